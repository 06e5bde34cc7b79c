"""The console's train modes (v1 ``trainMode`` per job, v2 per fine-tuning job): a DPO, KTO or PostPretrain
run's data checked in its format before anything is queued, written to the job in canonical form, and
``train_mode`` in its ``spec.json`` (the unit tests' fake worker trains it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from platform_helpers import Signer, console, wait_for

DPO_ROWS = [[{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}] for i in range(10)]
KTO_ROWS = [[{"user": f"q{i}", "chosen" if i % 2 else "rejected": f"answer {i}"}] for i in range(10)]
SFT_ROWS = [[{"prompt": "q", "response": [["a"]]}]]


def _put(client: Any, key: str, body: str) -> str:
    assert client.put(f"/bos/my-bucket/{key}", content=body.encode(), auth=Signer()).status_code == 200
    return f"bos:/my-bucket/{key}"


def _jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _v2_job(client: Any, mode: str) -> Any:
    return console(client, "/v2/finetuning", {"name": "j", "model": "tiny-chat", "trainMode": mode},
                   Action="CreateFineTuningJob")


def _v2_task(client: Any, job: str, uri: str, **hyper: Any) -> Any:
    return console(client, "/v2/finetuning", {
        "jobId": job, "parameterScale": "LoRA", "hyperParameterConfig": {"epoch": 1, "batchSize": 2, **hyper},
        "datasetConfig": {"sourceType": "Bos", "versions": [{"versionBosUri": uri}], "splitRatio": 20}},
        Action="CreateFineTuningTask")


def _spec(tmp_path: Path, task: str) -> tuple[dict[str, Any], Path]:
    (spec,) = tmp_path.rglob(f"jobs/{task}/spec.json")
    return json.loads(spec.read_text()), spec.parent


def test_a_v2_dpo_job_trains_its_pairs_with_beta_and_a_held_out_split(client: Any, tmp_path: Path) -> None:
    job = _v2_job(client, "DPO")["result"]["jobId"]
    task = _v2_task(client, job, _put(client, "prefs.jsonl", _jsonl(DPO_ROWS)))["result"]["taskId"]
    spec, job_dir = _spec(tmp_path, task)
    assert spec["train_mode"] == "DPO" and spec["hyper"]["beta"] == 0.1
    train = [json.loads(x) for x in (job_dir / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (job_dir / "eval.jsonl").read_text().splitlines()]
    assert len(train) == 8 and len(held) == 2
    assert train[0].keys() == {"prompt", "chosen", "rejected"} and train[0]["prompt"][0]["role"] == "user"
    done = wait_for(lambda: (d := console(client, "/v2/finetuning", {"taskId": task},
                                          Action="DescribeFineTuningTask")["result"])["runStatus"] == "Done" and d)
    assert done["trainMode"] == "DPO"


def test_a_dataset_in_the_wrong_format_is_refused_naming_its_line_before_anything_is_queued(
        client: Any, tmp_path: Path) -> None:
    job = _v2_job(client, "DPO")["result"]["jobId"]
    bad = _v2_task(client, job, _put(client, "sft.jsonl", _jsonl(DPO_ROWS[:2] + SFT_ROWS)))
    assert bad["code"] == "InvalidParameter", bad
    assert bad["message"].startswith("datasetConfig.versions[0]: line 3: looks like SFT (prompt/response) data; "
                                     "DPO wants prompt + chosen + rejected")
    assert not list(tmp_path.rglob("jobs/*/spec.json"))
    assert _v2_job(client, "PPO")["message"] == "trainMode: must be one of SFT, PostPretrain, DPO, KTO, RFT, got 'PPO'"


def test_v1_names_the_mode_per_job_and_kto_takes_qianfans_single_answers(client: Any, tmp_path: Path) -> None:
    uri = _put(client, "kto.jsonl", _jsonl(KTO_ROWS))
    ds = console(client, "/wenxinworkshop/dataset/create", {"name": "kto", "projectType": 20, "templateType": 2000,
                                                            "dataType": 4})["result"]["id"]
    console(client, "/wenxinworkshop/dataset/import", {"datasetId": ds, "annotated": True, "importFrom": 1,
                                                       "files": [uri]})
    task = console(client, "/wenxinworkshop/finetune/createTask", {"name": "t", "trainType": "tiny-chat"})["result"]
    job = console(client, "/wenxinworkshop/finetune/createJob", {
        "taskId": task["id"], "trainType": "tiny-chat", "trainMode": "KTO", "peftType": "LoRA",
        "trainConfig": {"epoch": 1, "batchSize": 2, "desirableWeight": 1.5}, "trainset": [{"type": 1, "id": ds}],
        "trainsetRate": 0})["result"]
    spec, job_dir = _spec(tmp_path, job["uuid"])
    assert spec["train_mode"] == "KTO" and spec["hyper"]["desirableWeight"] == 1.5
    labels = [json.loads(x)["label"] for x in (job_dir / "train.jsonl").read_text().splitlines()]
    assert labels == [bool(i % 2) for i in range(10)]
    detail = console(client, "/wenxinworkshop/finetune/jobDetail", {"taskId": task["id"], "jobId": job["id"]})
    assert detail["result"]["trainMode"] == "KTO"
    # the dataset keeps its records whole: its export gives them back as they came
    assert console(client, "/wenxinworkshop/dataset/info", {"datasetId": ds})["result"]["versionInfo"][
        "entityCount"] == 10


def test_post_pretrain_takes_a_txt_file_and_the_supported_models_list_the_modes(client: Any, tmp_path: Path) -> None:
    job = _v2_job(client, "PostPretrain")["result"]["jobId"]
    corpus = "\n\n".join(f"Paragraph {i} of the corpus, plain text." for i in range(5))
    task = _v2_task(client, job, _put(client, "corpus.txt", corpus))["result"]["taskId"]
    spec, job_dir = _spec(tmp_path, task)
    assert spec["train_mode"] == "PostPretrain" and "beta" not in spec["hyper"]
    assert all("text" in json.loads(x) for x in (job_dir / "train.jsonl").read_text().splitlines())
    models = console(client, "/v2/finetuning", {}, Action="DescribeFineTuningSupportModels")["result"]
    modes = {m["trainMode"]: m for m in models[0]["supportTrainMode"]}
    assert set(modes) == {"SFT", "PostPretrain", "DPO", "KTO"}
    keys = {p["key"]: p for p in modes["KTO"]["supportParameterScale"][0]["supportHyperParameterConfig"]}
    assert keys["beta"]["default"] == 0.1 and "undesirableWeight" in keys


def test_the_supported_models_list_each_bases_own_defaults(client: Any, monkeypatch: Any) -> None:
    """A base with a row of its own in the mode table (``per_base``) is listed with those defaults, not the mode's."""
    import dataclasses

    from qfnb.protocol.console.train_modes import MODE_TABLE

    def dpo_rate(listed: dict[str, Any]) -> Any:
        modes = {m["trainMode"]: m for m in listed["supportTrainMode"]}
        keys = {p["key"]: p for p in modes["DPO"]["supportParameterScale"][0]["supportHyperParameterConfig"]}
        return keys["learningRate"]["default"]

    (listed,) = [m for m in console(client, "/v2/finetuning", {}, Action="DescribeFineTuningSupportModels")[
        "result"] if m["model"] == "Tiny-Chat"]
    assert dpo_rate(listed) == MODE_TABLE["DPO"].defaults()["learningRate"]
    row = dataclasses.replace(MODE_TABLE["DPO"], per_base={"tiny-chat": {"learningRate": 3e-5}})
    monkeypatch.setitem(MODE_TABLE, "DPO", row)
    (listed,) = [m for m in console(client, "/v2/finetuning", {}, Action="DescribeFineTuningSupportModels")[
        "result"] if m["model"] == "Tiny-Chat"]
    assert dpo_rate(listed) == 3e-5


def test_a_kto_run_on_pairs_given_no_split_holds_whole_prompts_out(client: Any, tmp_path: Path) -> None:
    """12 pairs are 24 KTO items: no split named, the platform holds a fifth out by prompt, so a held-out
    prompt's good and bad answers are both held out and the run never trained on it."""
    pairs = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(12)]
    job = _v2_job(client, "KTO")["result"]["jobId"]
    task = console(client, "/v2/finetuning", {
        "jobId": job, "parameterScale": "LoRA", "hyperParameterConfig": {"epoch": 1, "batchSize": 2},
        "datasetConfig": {"sourceType": "Bos", "versions": [{"versionBosUri": _put(client, "kto-pairs.jsonl",
                                                                                   _jsonl(pairs))}]}},
        Action="CreateFineTuningTask")["result"]["taskId"]
    _, job_dir = _spec(tmp_path, task)
    train = [json.loads(x) for x in (job_dir / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (job_dir / "eval.jsonl").read_text().splitlines()]
    prompt = lambda row: row["prompt"][0]["content"]  # noqa: E731
    assert len(train) + len(held) == 24 and len(held) == 4  # 2 of 12 prompts (20 %), both answers of each
    assert sorted(r["label"] for r in held) == [False, False, True, True]
    assert not {prompt(r) for r in train} & {prompt(r) for r in held}
