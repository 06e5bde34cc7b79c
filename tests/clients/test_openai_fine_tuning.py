"""OpenAI's fine-tuning API on the local platform, through the real ``openai`` SDK against the
platform's app (engine doubles, the fast stand-in training worker): a file checked as fine-tuning
data when uploaded, a supervised job run to its end with its events and checkpoints (held-out
metrics), the tuned model and a checkpoint served by their ``ft:`` names without a restart, cancel,
list pagination, and each refusal in OpenAI's error shape naming its field."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import Signer

from qfnb.protocol.console import checkpoints as ckpt
from tests.fakes.local_platform import ServedPlatform

openai = pytest.importorskip("openai")


def _sdk(served: ServedPlatform) -> Any:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=served.bearer_token(), max_retries=0)


def chat_lines(n: int, start: int = 0) -> bytes:
    return "".join(json.dumps({"messages": [
        {"role": "system", "content": "You answer with the code word."},
        {"role": "user", "content": f"What is code {i}?"},
        {"role": "assistant", "content": f"Code {i} is {chr(65 + i % 26) * 3}."}]}) + "\n"
        for i in range(start, start + n)).encode()


def preference_lines(n: int) -> bytes:
    return "".join(json.dumps({"input": {"messages": [{"role": "user", "content": f"Greet person {i}"}]},
                               "preferred_output": [{"role": "assistant", "content": f"Hello, person {i}!"}],
                               "non_preferred_output": [{"role": "assistant", "content": "Go away."}]}) + "\n"
                   for i in range(n)).encode()


def upload(sdk: Any, data: bytes, name: str = "train.jsonl") -> Any:
    return sdk.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune")


def wait_status(sdk: Any, job_id: str, wanted: tuple[str, ...], timeout: float = 30.0) -> Any:
    """The job once it has ended in one of ``wanted`` (a cancelled job shows ``cancelled`` at once, and
    its ``finished_at`` once its worker stopped)."""
    deadline = time.monotonic() + timeout
    while True:
        job = sdk.fine_tuning.jobs.retrieve(job_id)
        if job.status in wanted and job.finished_at is not None:
            return job
        assert time.monotonic() < deadline, f"job {job_id} is still {job.status}"
        time.sleep(0.1)


def test_a_supervised_job_runs_and_its_model_answers_under_its_ft_name(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    train, valid = upload(sdk, chat_lines(12)), upload(sdk, chat_lines(4, start=20), "valid.jsonl")
    assert train.purpose == "fine-tune" and train.status == "processed"
    job = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id, validation_file=valid.id,
                                      suffix="codes", seed=7,
                                      method={"type": "supervised", "supervised": {"hyperparameters": {
                                          "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 2}}},
                                      metadata={"team": "a"})
    assert job.id.startswith("ftjob-") and job.status in ("queued", "running") and job.fine_tuned_model is None
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.learning_rate_multiplier == 2
    assert job.method.type == "supervised" and job.seed == 7 and job.metadata == {"team": "a"}

    done = wait_status(sdk, job.id, ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:Tiny-Chat:local:codes:{job.id.removeprefix('ftjob-')}"
    assert done.trained_tokens and done.finished_at >= done.created_at

    # the same job is a console fine-tune underneath: its run holds the rows, trained as SFT
    platform = served.app.state.platform
    run = platform.store.get("runs", "task-" + job.id.removeprefix("ftjob-"))
    assert run["trainMode"] == "SFT" and run["rows"] == 12 and run["evalRows"] == 4
    container = platform.store.get("ft_jobs", run["containerId"])
    assert container["name"] == "codes" and container["model"] == "Tiny-Chat"
    detail = httpx.post(served.url + "/v2/finetuning", params={"Action": "DescribeFineTuningTask"},
                        json={"taskId": run["sid"]}, auth=Signer()).json()["result"]  # the v2 console's view
    assert detail["runStatus"] == "Done" and detail["trainMode"] == "SFT" and detail["checkpointList"]
    first = json.loads((Path(run["job_dir"]) / "train.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": "What is code 0?", "response": "Code 0 is AAA.",
                     "system": "You answer with the code word."}

    events = sdk.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in events]
    assert messages[0] == "The job has successfully completed"  # newest first, as OpenAI lists them
    assert messages[-1] == f"Created fine-tuning job: {job.id}"
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and all(e.data["train_loss"] > 0 for e in metrics)
    assert any("valid_loss" in e.data for e in metrics)
    page = sdk.fine_tuning.jobs.list_events(job.id, limit=3)
    assert [e.id for e in page.data] == [e.id for e in events[:3]] and page.has_more

    checkpoints = sdk.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].step_number > checkpoints[-1].step_number
    assert all(c.metrics.valid_loss is not None and c.metrics.train_loss is not None for c in checkpoints)
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-" \
        f"{checkpoints[0].step_number}"

    answer = sdk.chat.completions.create(model=done.fine_tuned_model,
                                         messages=[{"role": "user", "content": "What is code 3?"}])
    assert answer.model == done.fine_tuned_model and answer.choices[0].message.content
    base, adapter = served.registry.adapters[done.fine_tuned_model.lower()]
    assert base == "Tiny-Chat" and adapter.name == "adapter"
    older = checkpoints[-1].fine_tuned_model_checkpoint
    sdk.chat.completions.create(model=older, messages=[{"role": "user", "content": "hi"}])
    stored = served.registry.adapters[older.lower()][1]  # the checkpoint saved at that step (its config says)
    assert json.loads((stored / "adapter_config.json").read_text())["step"] == checkpoints[-1].step_number
    with pytest.raises(openai.BadRequestError, match="no checkpoint at step 999"):
        sdk.chat.completions.create(model=f"{done.fine_tuned_model}:ckpt-step-999",
                                    messages=[{"role": "user", "content": "hi"}])


def _finished_run(sdk: openai.OpenAI, served: ServedPlatform, *, rows: int,
                  batch_size: int) -> tuple[Any, Any, dict[str, Any]]:
    """A supervised job of ``rows`` lines run to its end: the job, the platform and its run's record."""
    job = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=upload(sdk, chat_lines(rows)).id,
                                      validation_file=upload(sdk, chat_lines(4, start=20)).id,
                                      hyperparameters={"n_epochs": 1, "batch_size": batch_size})
    assert wait_status(sdk, job.id, ("succeeded", "failed")).status == "succeeded"
    platform = served.app.state.platform
    return job, platform, platform.store.get("runs", "task-" + job.id.removeprefix("ftjob-"))


def test_each_checkpoint_event_follows_its_own_step(served: ServedPlatform) -> None:
    """A run whose weights took a while to load: its steps' times are estimated from its pace and its
    checkpoints are stamped when saved. The events list each checkpoint after its step's metrics and before the
    next step's (they listed "Checkpoint created at step 1" after step 3's metrics), their times never going back."""
    sdk = _sdk(served)
    job, platform, run = _finished_run(sdk, served, rows=12, batch_size=2)
    total, started, load, pace = int(run["totalSteps"]), float(run["started"]), 30.0, 5.0
    saved = [{**e, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + load + pace * e["step"] + 1))}
             for e in run["checkpointList"]]
    assert len(saved) >= 2 and total >= 4
    platform.store.update("runs", run["id"], checkpointList=saved, currentStep=total,
                          elapsedSeconds=load + pace * total + 2, finished=started + load + pace * total + 3)
    events = sdk.fine_tuning.jobs.list_events(job.id, limit=100).data[::-1]  # oldest first
    messages = [e.message for e in events]
    for entry in saved:
        step = int(entry["step"])
        at = messages.index(f"Checkpoint created at step {step}")
        assert messages[at - 1].startswith(f"Step {step}/{total}:"), messages
    times = [e.created_at for e in events]
    assert times == sorted(times), times


def test_a_reinforcement_runs_rewards_are_in_its_events_and_checkpoints(served: ServedPlatform) -> None:
    """A RFT run's step rewards (the batch's mean, its moving mean), its held-out reward and the checkpoints'
    held-out reward are what tell a reinforcement job's progress (its loss is 0 at the first step by
    construction): the metrics events carry them beside the loss, the checkpoints name the reward. The run's
    curves are set in the store as the RFT worker's progress lines set them."""
    sdk = _sdk(served)
    job, platform, run = _finished_run(sdk, served, rows=8, batch_size=4)
    last = int(run["totalSteps"])
    saved = [{**e, "metric": 0.5, "metricName": "reward"} for e in run["checkpointList"]]
    platform.store.update("runs", run["id"], rewardCurve=[[1, 0.25], [last, 0.75]],
                          rewardMeanCurve=[[1, 0.25], [last, 0.5]], evalRewardCurve=[[last, 0.625]],
                          checkpointList=saved)
    steps = {e.data["step"]: e for e in sdk.fine_tuning.jobs.list_events(job.id, limit=100).data
             if e.type == "metrics"}
    assert steps[1].data["train_reward"] == 0.25 and steps[1].data["train_reward_mean"] == 0.25
    assert "valid_reward" not in steps[1].data and ", reward=0.2500" in steps[1].message
    assert steps[last].data["valid_reward"] == 0.625 and steps[last].data["train_reward_mean"] == 0.5
    assert steps[last].message.endswith(", reward=0.7500, validation reward=0.6250"), steps[last].message
    checkpoint = sdk.fine_tuning.jobs.checkpoints.list(job.id).data[0]
    assert checkpoint.metrics.model_extra["valid_reward"] == 0.5


def test_a_model_served_no_better_than_its_looping_base_is_a_warning_event(served: ServedPlatform) -> None:
    """The worker's ``served_unjudged`` (most held-out answers degenerated, not held against the run as the base's
    all had): the job succeeds, and a ``warn`` event after the model's creation says it does not answer them."""
    sdk = _sdk(served)
    job, platform, run = _finished_run(sdk, served, rows=12, batch_size=2)
    unjudged = {"step": 6, "rate": 0.875, "seen": "7 of 8 answers degenerate, e.g. '可以！…'"}
    platform.store.update("runs", run["id"], metrics={**(run.get("metrics") or {}), "served_unjudged": unjudged})
    events = sdk.fine_tuning.jobs.list_events(job.id, limit=100).data[::-1]  # oldest first
    [warned] = [e for e in events if e.level == "warn"]
    assert warned.message.startswith("The model's held-out answers degenerated at step 6, as all of the base's did: "
                                     "7 of 8 answers degenerate")
    assert "read its answers before you use it" in warned.message
    messages = [e.message for e in events]
    created = f"New fine-tuned model created: {sdk.fine_tuning.jobs.retrieve(job.id).fine_tuned_model}"
    assert messages.index(warned.message) == messages.index(created) + 1
    assert warned.data["served_unjudged"] == unjudged


def test_a_collapse_is_a_warning_event_naming_its_step_and_the_best_checkpoint_still_answers(
        served: ServedPlatform) -> None:
    """A run whose held-out answers collapsed (the worker's ``collapse`` line and degenerate checkpoints, set in the
    store as its progress lines set them): a ``warn`` event names the step, what was seen and the checkpoint kept;
    the degenerate checkpoint says so; the best checkpoint named at the end is one that still answered."""
    sdk = _sdk(served)
    job, platform, run = _finished_run(sdk, served, rows=12, batch_size=2)
    saved = [{**e, "evalLoss": 1.0 + i} for i, e in enumerate(run["checkpointList"])]
    assert len(saved) >= 2
    first, last = int(saved[0]["step"]), int(saved[-1]["step"])
    saved[-1].update(evalLoss=0.0, valid_degeneration_rate=1.0, degenerate=True,
                     degeneration="the same answer to 4 of 4 prompts: 'OK OK OK'")
    saved[0].update(valid_degeneration_rate=0.0, degenerate=False)
    collapse = {"step": last, "rate": 1.0, "seen": saved[-1]["degeneration"], "example": "OK OK OK",
                "lastGoodStep": first, "time": saved[-1]["time"]}
    platform.store.update("runs", run["id"], checkpointList=saved, collapse=collapse)
    events = sdk.fine_tuning.jobs.list_events(job.id, limit=100).data[::-1]  # oldest first
    [warned] = [e for e in events if e.level == "warn"]
    assert warned.message.startswith(f"The model's held-out answers collapsed at step {last}: the same answer to 4")
    assert f"the model is step {first}'s checkpoint" in warned.message
    assert warned.data["collapse"]["lastGoodStep"] == first
    messages = [e.message for e in events]
    assert f"Checkpoint created at step {last}; its held-out answers degenerated: the same answer" in " ".join(messages)
    assert any(m.startswith(f"The best checkpoint by its held-out score is at step {first}:") for m in messages)
    listed = {c.step_number: c for c in sdk.fine_tuning.jobs.checkpoints.list(job.id).data}
    assert listed[last].metrics.model_extra["valid_degeneration_rate"] == 1.0


def test_a_bad_line_is_refused_at_upload_naming_the_line_and_field(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    bad = chat_lines(1) + json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                   {"role": "robot", "content": "beep"}]}).encode() + b"\n"
    with pytest.raises(openai.BadRequestError) as caught:
        upload(sdk, bad)
    error = caught.value.body
    assert caught.value.status_code == 400 and error["param"] == "file"
    assert "line 2: messages[1].role must be one of system, developer, user, assistant, got 'robot'" in error["message"]
    mixed = chat_lines(1) + preference_lines(1)
    with pytest.raises(openai.BadRequestError, match="line 2: is in the preference format but the file's first"):
        upload(sdk, mixed)
    with pytest.raises(openai.BadRequestError, match="line 1: is not valid JSON"):
        upload(sdk, b"{not json\n")
    assert [f for f in sdk.files.list().data if f.purpose == "fine-tune"] == []  # nothing refused was kept
    # a batch file is not checked as fine-tuning data, and is refused as one
    batch_file = sdk.files.create(file=("b.jsonl", io.BytesIO(b'{"custom_id": "1"}\n')), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="uploaded with purpose 'batch'"):
        sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=batch_file.id)


def test_a_qianfan_format_file_uploaded_as_openai_data_is_named_as_such(served: ServedPlatform) -> None:
    """Qianfan's own SFT or DPO lines given to files.create(purpose="fine-tune") are told what they look like
    and what the chat format is, not "must be a JSON object, got list"."""
    sdk = _sdk(served)
    qianfan = [[{"prompt": "What is 2+2?", "response": [["4"]]}], {"prompt": "Hi", "response": "Hello"},
               [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}]]
    for line in qianfan:
        with pytest.raises(openai.BadRequestError) as caught:
            upload(sdk, chat_lines(1) + json.dumps(line).encode() + b"\n")
        assert "line 2: looks like Qianfan's prompt/response data, not an OpenAI fine-tuning line: the chat format " \
            "is {\"messages\"" in caught.value.body["message"], caught.value.body
    with pytest.raises(openai.BadRequestError, match="line 1: must be a JSON object, got list"):  # any other list
        upload(sdk, json.dumps([{"messages": [{"role": "user", "content": "hi"}]}]).encode() + b"\n")
    assert [f for f in sdk.files.list().data if f.purpose == "fine-tune"] == []


def test_each_refusal_names_its_field(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    chat, pref = upload(sdk, chat_lines(3)), upload(sdk, preference_lines(3))
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"model": "gpt-4o-mini-2024-07-18", "training_file": chat.id}, "model",
         "cannot be fine-tuned on the local platform; it fine-tunes: Tiny-Chat, Other-Chat"),
        ({"model": "Tiny-Chat", "training_file": "file-nope"}, "training_file", "does not exist"),
        ({"model": "Tiny-Chat", "training_file": pref.id}, "training_file",
         "is in the preference format, which method 'dpo' trains on; method 'supervised' needs the chat format"),
        ({"model": "Tiny-Chat", "training_file": chat.id, "method": {"type": "dpo"}}, "training_file",
         "method 'dpo' needs the preference format"),
        ({"model": "Tiny-Chat", "training_file": chat.id, "method": {"type": "unsupervised"}}, "method.type",
         "must be one of supervised, dpo, reinforcement"),
        ({"model": "Tiny-Chat", "training_file": chat.id, "hyperparameters": {"n_epochs": 0}},
         "hyperparameters.n_epochs", "must be in [1, 100]"),
        ({"model": "Tiny-Chat", "training_file": chat.id,
          "method": {"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}},
         "method.supervised.hyperparameters.beta", "is not a supervised hyperparameter"),
        ({"model": "Tiny-Chat", "training_file": chat.id, "suffix": "no spaces please"}, "suffix", "must be 1-64"),
        ({"model": "Tiny-Chat", "training_file": chat.id,
          "method": {"type": "reinforcement", "reinforcement": {"grader": {
              "type": "python", "name": "mine", "source": "def grade(sample, item): return 1.0"}}}},
         "method.reinforcement.grader.type",
         "user code never runs in the shared local daemon; write the reward as a Python function and train with "
         "LLMFinetune(train_type=..., dataset=..., train_mode=\"RFT\", reward=fn)"),
        ({"model": "Tiny-Chat", "training_file": chat.id,
          "method": {"type": "reinforcement", "reinforcement": {"grader": {
              "type": "text_similarity", "name": "s", "input": "{{sample.output_text}}", "reference": "x",
              "evaluation_metric": "cosine"}}}},
         "method.reinforcement.grader.evaluation_metric", "must be one of fuzzy_match, bleu"),
    ]
    for fields, param, words in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.fine_tuning.jobs.create(**fields)
        assert caught.value.body["param"] == param, (fields, caught.value.body)
        assert words in caught.value.body["message"], (fields, caught.value.body)
    assert sdk.fine_tuning.jobs.list().data == []  # nothing refused was queued
    with pytest.raises(openai.NotFoundError, match="No fine-tuning job found with id 'ftjob-nope'"):
        sdk.fine_tuning.jobs.retrieve("ftjob-nope")


def test_another_method_types_settings_are_refused_not_dropped(served: ServedPlatform) -> None:
    """``{"type": "dpo", "supervised": {"hyperparameters": ...}}`` (settings under the wrong type's key) is a 400
    naming the key: it used to queue a job that trained on the defaults, the given settings silently dropped."""
    sdk = _sdk(served)
    chat, pref = upload(sdk, chat_lines(3)), upload(sdk, preference_lines(3))
    cases: list[tuple[Any, dict[str, Any], str, str]] = [
        (pref, {"type": "dpo", "supervised": {"hyperparameters": {"n_epochs": 3}}}, "method.supervised",
         "is for method type 'supervised', but method.type is 'dpo': give this job's settings in method.dpo"),
        (chat, {"type": "supervised", "hyperparameters": {"n_epochs": 3}}, "method.hyperparameters",
         "is not a method field; method takes 'type' and the type's own object ('supervised')"),
    ]
    for training_file, method, param, words in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=training_file.id, method=method)
        assert caught.value.body["param"] == param and words in caught.value.body["message"], caught.value.body
    assert sdk.fine_tuning.jobs.list().data == []  # nothing refused was queued


def test_cancel_and_list_pagination(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    train = upload(sdk, chat_lines(40))
    made = [sdk.fine_tuning.jobs.create(model="tiny-chat", training_file=train.id, suffix=f"j{i}",
                                        hyperparameters={"n_epochs": 50}) for i in range(3)]
    cancelled = [sdk.fine_tuning.jobs.cancel(job.id) for job in made]  # one running, two queued
    assert [job.status for job in cancelled] == ["cancelled"] * 3
    with pytest.raises(openai.BadRequestError, match=f"Job has already completed: {made[0].id} is cancelled"):
        sdk.fine_tuning.jobs.cancel(made[0].id)
    for job in made:
        ended = wait_status(sdk, job.id, ("cancelled",))
        assert ended.fine_tuned_model is None and ended.finished_at is not None
    assert sdk.fine_tuning.jobs.list_events(made[0].id).data[0].message == "The job was cancelled"

    first = sdk.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == [made[2].id, made[1].id] and first.has_more
    assert [j.id for j in sdk.fine_tuning.jobs.list(limit=2, after=made[1].id).data] == [made[0].id]
    assert [j.id for j in sdk.fine_tuning.jobs.list(limit=1)] == [j.id for j in made[::-1]]  # the SDK pages on
    assert sdk.fine_tuning.jobs.list(metadata={"none": "x"}).data == []
    with pytest.raises(openai.BadRequestError, match="limit: must be an integer from 1 to 100"):
        sdk.fine_tuning.jobs.list(limit=0)
    with pytest.raises(openai.BadRequestError, match="pause is not available"):
        sdk.fine_tuning.jobs.pause(made[0].id)


def test_a_dpo_job_trains_in_the_dpo_mode_on_the_preference_file(served: ServedPlatform) -> None:
    sdk = _sdk(served)
    train, valid = upload(sdk, preference_lines(8)), upload(sdk, preference_lines(3), "valid.jsonl")
    job = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id, validation_file=valid.id,
                                      method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2,
                                                                                        "n_epochs": 1}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2
    done = wait_status(sdk, job.id, ("succeeded", "failed"))
    assert done.status == "succeeded", done.error
    run = served.app.state.platform.store.get("runs", "task-" + job.id.removeprefix("ftjob-"))
    spec = json.loads((Path(run["job_dir"]) / "spec.json").read_text())
    assert spec["train_mode"] == "DPO" and spec["hyper"]["beta"] == 0.2 and run["evalRows"] == 3
    detail = httpx.post(served.url + "/v2/finetuning", params={"Action": "DescribeFineTuningTask"},
                        json={"taskId": run["sid"]}, auth=Signer()).json()["result"]  # the v2 console's view
    assert detail["runStatus"] == "Done" and detail["trainMode"] == "DPO" and detail["checkpointList"]
    first = json.loads((Path(run["job_dir"]) / "train.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": [{"role": "user", "content": "Greet person 0"}], "chosen": "Hello, person 0!",
                     "rejected": "Go away."}
    answer = sdk.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content
    events = sdk.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert not any(e.message.startswith("No validation file") for e in events)  # it has one
    # without one, the job says at creation that its answers to new prompts cannot be judged
    bare = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id,
                                       method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1}}})
    [warned] = [e for e in sdk.fine_tuning.jobs.list_events(bare.id, limit=100).data if e.level == "warn"]
    assert warned.message.startswith("No validation file, and too few training examples to hold some out: the "
                                     "checkpoints cannot be judged") and "validation_file" in warned.message
    wait_status(sdk, bare.id, ("succeeded", "failed", "cancelled"))
    # from 20 examples up, the platform holds a fifth of them out itself, never trained on, and says so
    twenty = upload(sdk, preference_lines(20), "twenty.jsonl")
    held = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=twenty.id,
                                       method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1}}})
    events = sdk.fine_tuning.jobs.list_events(held.id, limit=100).data
    assert not any(e.level == "warn" for e in events)
    [said] = [e for e in events if e.message.startswith("No validation file")]
    assert said.level == "info" and "4 of the 20 training examples (20 %) are held out" in said.message
    run = served.app.state.platform.store.get("runs", "task-" + held.id.removeprefix("ftjob-"))
    job_dir = Path(run["job_dir"])
    trained = {json.loads(line)["chosen"] for line in (job_dir / "train.jsonl").read_text().splitlines()}
    judged = {json.loads(line)["chosen"] for line in (job_dir / "eval.jsonl").read_text().splitlines()}
    assert (run["rows"], run["evalRows"], len(trained), len(judged)) == (16, 4, 16, 4) and not trained & judged
    done = wait_status(sdk, held.id, ("succeeded", "failed"))
    run = served.app.state.platform.store.get("runs", run["id"])
    assert done.status == "succeeded", done.error
    # its checkpoints are kept (and judged on the held-out prompts by the worker) as with a validation file
    assert run["hyper"]["checkpoints"] == ckpt.DEFAULT_CHECKPOINTS and run["checkpointList"]
    # a preference line without its rejected answer is refused at upload, naming the line and field
    broken = preference_lines(2) + json.dumps({"input": {"messages": [{"role": "user", "content": "x"}]},
                                               "preferred_output": [{"role": "assistant", "content": "y"}],
                                               "non_preferred_output": [{"role": "user", "content": "z"}]}).encode()
    with pytest.raises(openai.BadRequestError, match=r"line 3: non_preferred_output\[0\].role must be 'assistant'"):
        upload(sdk, broken)


def test_an_openai_model_name_mapped_by_an_alias_trains_the_local_base(tmp_path: Path) -> None:
    from tests.fakes.local_platform import served_platform

    with served_platform(tmp_path / "data", aliases={"gpt-4o-mini-2024-07-18": "Tiny-Chat"}) as served:
        sdk = _sdk(served)
        job = sdk.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=upload(sdk, chat_lines(4)).id)
        assert job.model == "gpt-4o-mini-2024-07-18"  # as asked; the tuned model's name says what it is
        done = wait_status(sdk, job.id, ("succeeded",))
        assert done.fine_tuned_model.startswith("ft:Tiny-Chat:local::")


SAYS_IT = {"type": "string_check", "name": "says it", "input": "{{sample.output_text}}", "reference": "{{item.word}}",
           "operation": "ilike"}
#: the form and the content: a multi grader, run by the platform as data (no user code)
SAYS_IT_BRIEFLY = {"type": "multi", "name": "says it briefly", "calculate_output": "0.7 * says + 0.3 * near",
                   "graders": {"says": SAYS_IT,
                               "near": {"type": "text_similarity", "name": "near", "input": "{{sample.output_text}}",
                                        "reference": "{{item.word}}", "evaluation_metric": "fuzzy_match"}}}


@pytest.mark.parametrize("grader", [SAYS_IT, SAYS_IT_BRIEFLY], ids=["string_check", "multi"])
def test_a_reinforcement_job_with_a_declarative_grader_trains_as_rft(served: ServedPlatform,
                                                                    grader: dict[str, Any]) -> None:
    sdk = _sdk(served)
    prompts = "".join(json.dumps({"messages": [{"role": "user", "content": f"Say the word {w}"}], "word": w}) + "\n"
                      for w in ("apple", "pear", "plum", "fig", "kiwi", "lime")).encode()
    train = upload(sdk, prompts, "prompts.jsonl")
    job = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id, suffix="words",
                                      method={"type": "reinforcement", "reinforcement": {"grader": grader}})
    assert job.method.type == "reinforcement" and job.status in ("queued", "running")
    run = served.app.state.platform.store.get("runs", "task-" + job.id.removeprefix("ftjob-"))
    assert run["trainMode"] == "RFT" and run["rewardSource"] != "client"  # the grader, scored by the platform
    spec = json.loads((Path(run["job_dir"]) / "spec.json").read_text())
    assert spec["train_mode"] == "RFT" and spec["reward"] == grader
