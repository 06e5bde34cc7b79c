"""OpenAI's fine-tuning API on the local platform: a job is a console fine-tune (a container in
``ft_jobs`` and one run in ``runs``, so the console and ``%qftrain`` show the same job), shown in
OpenAI's shapes. The job id ``ftjob-X`` is the run ``task-X``; the tuned model's name,
``ft:<base>:local:<suffix>:X``, is served by the platform once the run is Done
(:meth:`qfnb.local.domain.platform.Platform.resolve`), each checkpoint as ``…:X:ckpt-step-N``.
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qfnb.local.domain.batch import files as batch_files
from qfnb.local.domain.state.site import TrainingSite
from qfnb.local.domain.state.values import BodyError, NotFound, bounded_int
from qfnb.local.domain.training import fine_tunes
from qfnb.protocol.bounded_jsonl import LineProblem, file_lines
from qfnb.protocol.console import checkpoints as ckpt
from qfnb.protocol.console.enums import RunStatus
from qfnb.protocol.console.train_ask import TrainData
from qfnb.protocol.console.train_modes import MODE_TABLE, defaults_for
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.openai.fine_tune_files import (
    CHAT,
    PREFERENCE,
    PROMPTS,
    FileShape,
    FormatProblem,
    inspect_lines,
    sft_rows,
)
from qfnb.protocol.wires.openai.graders import check_grader

log = logging.getLogger("qfnb.local.fine_tuning")

JOB_PREFIX, RUN_PREFIX = "ftjob-", "task-"
ORGANIZATION = "org-local"
#: the method types and the platform's train mode for each
MODES = {"supervised": "SFT", "dpo": "DPO", "reinforcement": "RFT"}
#: the file formats each method trains on (reinforcement reads a chat file's prompts, its answers ignored)
ACCEPTS = {"supervised": (CHAT,), "dpo": (PREFERENCE,), "reinforcement": (PROMPTS, CHAT)}
CREATE_FIELDS = ("model", "training_file", "validation_file", "method", "hyperparameters", "suffix", "seed",
                 "metadata", "integrations")
#: OpenAI's hyperparameter -> the platform's, per method
HYPER = {"n_epochs": "epoch", "batch_size": "batchSize", "learning_rate_multiplier": "learningRate",
         "beta": "beta", "rpo_alpha": "rpoAlpha", "max_reward_margin": "maxRewardMargin", "margin_stop": "marginStop",
         "length_normalize": "lengthNormalize", "tie_resamples": "tieResamples", "warm_start_steps": "warmStartSteps",
         "floor_degenerate": "floorDegenerate"}
#: the platform's own (beyond OpenAI's): against a collapsing DPO run (SFT steps first on a base that does not
#: chat yet), and RFT against a reward rarely earned or gamed (a degenerate sampled answer earns its group's lowest)
DPO_EXTRA = ("rpo_alpha", "max_reward_margin", "margin_stop", "length_normalize", "warm_start_steps")
RFT_EXTRA = ("tie_resamples", "warm_start_steps", "floor_degenerate")
METHOD_HYPER = {"supervised": ("n_epochs", "batch_size", "learning_rate_multiplier"),
                "dpo": ("n_epochs", "batch_size", "learning_rate_multiplier", "beta", *DPO_EXTRA),
                "reinforcement": ("n_epochs", "batch_size", "learning_rate_multiplier", *RFT_EXTRA)}
#: a run's per-step curves in the store -> their key in a metrics event's ``data`` (a RFT run's rewards: its
#: loss alone says little, the first step's is 0 by construction)
STEP_CURVES = {"evalLossCurve": "valid_loss", "rewardCurve": "train_reward", "rewardMeanCurve": "train_reward_mean",
               "evalRewardCurve": "valid_reward"}
#: how the message of a metrics event names them
STEP_SAID = {"valid_loss": "validation loss", "train_reward": "reward", "valid_reward": "validation reward"}
_SUFFIX = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
STATUS = {RunStatus.WAITING.value: "queued", RunStatus.RUNNING.value: "running", RunStatus.DONE.value: "succeeded",
          RunStatus.FAILED.value: "failed", RunStatus.STOPPED.value: "cancelled"}
ENDED = ("succeeded", "failed", "cancelled")


# ---- files ----------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[str]:
    """Each line's text, read under :mod:`qfnb.protocol.bounded_jsonl`'s bounds (one line held at a time)."""
    return (text for _, text in file_lines(path))


def check_file(path: Path, field: str = "file", name: str = "") -> FileShape:
    """A ``purpose="fine-tune"`` file's shape; BodyError naming ``field`` and the line and field, or the line and
    the bound it passes."""
    try:
        return inspect_lines(_lines(path))
    except (FormatProblem, LineProblem) as exc:
        raise BodyError(field, f"{name}is not a fine-tuning file: {exc}") from None


def _data_file(platform: TrainingSite, file_id: Any, field: str) -> tuple[dict[str, Any], FileShape]:
    if not isinstance(file_id, str) or not file_id:
        raise BodyError(field, "is required: the id of a file uploaded with purpose 'fine-tune'")
    try:
        rec = batch_files.get_file(platform, file_id)
    except NotFound:
        raise BodyError(field, f"file {file_id!r} does not exist") from None
    if rec["purpose"] != "fine-tune":
        raise BodyError(field, f"file {file_id} was uploaded with purpose {rec['purpose']!r}; fine-tuning data must "
                        "be uploaded with purpose 'fine-tune'")
    return rec, check_file(batch_files.file_path(platform, rec), field, f"file {file_id} ")


def _run_file(platform: TrainingSite, rec: dict[str, Any], kind: str, key: str) -> str:
    """The ``bos:/`` URI a run reads the file from: a preference or prompts file as uploaded (the
    train modes read OpenAI's formats: :mod:`qfnb.protocol.console.train_formats`), a chat file as the
    platform's SFT rows, stored beside it (written a line at a time: the file is never held whole)."""
    if kind != "supervised":
        return f"bos:/{rec['bucket']}/{rec['key']}"
    rows = sft_rows(_lines(batch_files.file_path(platform, rec)))
    object_key = f"{rec['key'].rsplit('/', 1)[0]}/{key}.rows.jsonl"
    try:
        platform.objects.put(batch_files.BUCKET, object_key,
                             (json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n" for row in rows))
    except (FormatProblem, LineProblem) as exc:  # the file changed since it was checked
        raise BodyError("training_file", f"file {rec['sid']} is not a fine-tuning file: {exc}") from None
    return f"bos:/{batch_files.BUCKET}/{object_key}"


# ---- creating a job ---------------------------------------------------------------------------


def _method(body: dict[str, Any]) -> tuple[str, dict[str, Any], str, dict[str, Any] | None]:
    """``(type, its hyperparameters, their field, its grader)`` from ``method`` or the legacy
    ``hyperparameters``."""
    method = body.get("method")
    legacy = body.get("hyperparameters")
    if legacy is not None and not isinstance(legacy, dict):
        raise BodyError("hyperparameters", "must be an object")
    if method is None:
        return "supervised", dict(legacy or {}), "hyperparameters", None
    if not isinstance(method, dict):
        raise BodyError("method", "must be an object {\"type\": \"supervised\"|\"dpo\"|\"reinforcement\", ...}")
    kind = method.get("type")
    if kind not in MODES:
        raise BodyError("method.type", f"must be one of {', '.join(MODES)}, got {kind!r:.40}")
    _check_method_keys(method, kind)
    inner = method.get(kind) or {}
    if not isinstance(inner, dict):
        raise BodyError(f"method.{kind}", "must be an object")
    hyper = inner.get("hyperparameters") or {}
    if not isinstance(hyper, dict):
        raise BodyError(f"method.{kind}.hyperparameters", "must be an object")
    if legacy and (hyper or kind != "supervised"):
        raise BodyError("hyperparameters", f"give the hyperparameters once, in method.{kind}.hyperparameters (the "
                        "top-level field is the legacy spelling, for supervised jobs)")
    try:
        grader = check_grader(inner.get("grader"), "method.reinforcement.grader") if kind == "reinforcement" else None
    except ProtocolError as exc:
        raise BodyError(exc.field, str(exc).split(": ", 1)[1]) from None
    field = "hyperparameters" if legacy else f"method.{kind}.hyperparameters"
    return kind, dict(legacy or hyper), field, grader


def _check_method_keys(method: dict[str, Any], kind: str) -> None:
    """``method`` holds ``type`` and that type's object only: another type's settings (``{"type": "dpo",
    "supervised": {...}}``) would otherwise be dropped without a word and the job train on the defaults."""
    for key, value in method.items():
        if key in ("type", kind) or value is None:  # an unset field sent as null is no setting
            continue
        if key in MODES:
            raise BodyError(f"method.{key}", f"is for method type {key!r}, but method.type is {kind!r}: give this "
                            f"job's settings in method.{kind} (or set method.type to {key!r})")
        raise BodyError(f"method.{key}", f"is not a method field; method takes 'type' and the type's own object "
                        f"('{kind}')")


def _hyper(kind: str, given: dict[str, Any], field: str, seed: int, base: str | None = None) -> dict[str, Any]:
    """The platform's hyperparameters (``check_hyper``'s limits) for OpenAI's; "auto" is the default (the
    method's on ``base``: ``learning_rate_multiplier`` scales that learning rate)."""
    raw: dict[str, Any] = {"seed": seed}
    defaults = defaults_for(MODES[kind], base)
    for name, value in given.items():
        if name not in METHOD_HYPER[kind]:
            raise BodyError(f"{field}.{name}", f"is not a {kind} hyperparameter here; they are: "
                            f"{', '.join(METHOD_HYPER[kind])}")
        if value == "auto":
            continue
        if name == "learning_rate_multiplier":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1000:
                raise BodyError(f"{field}.{name}", f"must be a number in (0, 1000] or 'auto', got {value!r:.40}")
            value = min(1.0, float(defaults["learningRate"]) * value)
        elif name == "beta" and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 2):
            raise BodyError(f"{field}.{name}", f"must be a number in (0, 2] or 'auto', got {value!r:.40}")
        raw[HYPER[name]] = value
    try:
        return fine_tunes.check_hyper(raw, field, MODES[kind], base)
    except BodyError as exc:
        raise _in_openai_words(exc, field) from None


def _in_openai_words(exc: BodyError, field: str) -> BodyError:
    """A refusal of a platform hyperparameter named back in OpenAI's words, under ``field``."""
    names = {v: k for k, v in HYPER.items()}
    key = exc.field.rsplit(".", 1)[-1]
    return BodyError(f"{field}.{names.get(key, key)}", str(exc).split(": ", 1)[1])


def _base(platform: TrainingSite, model: Any) -> str:
    if not isinstance(model, str) or not model:
        raise BodyError("model", "is required: the base model to fine-tune")
    try:
        return fine_tunes.resolve_base(platform, model, "model")
    except BodyError:
        trainable = ", ".join(m.name for m in fine_tunes.trainable_models(platform)) or "none"
        raise BodyError("model", f"model {model!r} cannot be fine-tuned on the local platform; it fine-tunes: "
                        f"{trainable}. OpenAI's own models (gpt-4o-mini-2024-07-18, gpt-4.1-mini-2025-04-14, ...) "
                        "are not here: name a local model, or map the name onto one with QFNB_MODEL_ALIASES, e.g. "
                        f'{{"{model}": "{trainable.split(", ")[0]}"}}') from None


def _check_fields(body: dict[str, Any]) -> int:
    """The create's fields checked (but the method and the files); its seed (42 when it gives none)."""
    for key in body:
        if key not in CREATE_FIELDS:
            raise BodyError(key, f"is not a fine-tuning job field; they are: {', '.join(CREATE_FIELDS)}")
    if body.get("integrations"):
        raise BodyError("integrations", "are not available on the local platform (it reaches no outside service); "
                        "the job's metrics are in its events and checkpoints")
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix)):
        raise BodyError("suffix", f"must be 1-64 letters, digits, '_', '.' or '-', got {suffix!r:.80}")
    return 42 if body.get("seed") is None else bounded_int(body, "seed", 42, 0, 2**31 - 1)


def create_job(platform: TrainingSite, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/fine_tuning/jobs``: everything is checked before the run is queued."""
    seed = _check_fields(body)
    kind, given, hyper_field, grader = _method(body)
    base = _base(platform, body.get("model"))
    hyper = _hyper(kind, given, hyper_field, seed, base)
    metadata = batch_files.check_metadata(body.get("metadata"))
    files = [("training_file", body.get("training_file"))]
    if body.get("validation_file") is not None:
        files.append(("validation_file", body["validation_file"]))
    checked = []
    for field, file_id in files:
        rec, shape = _data_file(platform, file_id, field)
        if shape.format not in ACCEPTS[kind]:
            raise BodyError(field, f"file {rec['sid']} is in the {shape.format} format, which method "
                            f"{shape.method!r} trains on; method {kind!r} needs the {ACCEPTS[kind][0]} format")
        checked.append((field, rec))
    suffix = body.get("suffix") or ""
    started = time.time()
    # the files first: converting a big one takes seconds, and the store's first write (the run's insert) takes its
    # lock (a create sent under an Idempotency-Key is one transaction) until the job is stored
    refs = [(field, _run_file(platform, rec, kind, f"{field}-{int(started * 1000)}")) for field, rec in checked]
    try:
        mode = fine_tunes.check_mode(MODES[kind])
    except BodyError as exc:
        raise BodyError("method.type", f"{kind} jobs cannot run on this platform yet ({exc})") from None
    info = {"model": body["model"], "training_file": checked[0][1]["sid"],
            "validation_file": checked[1][1]["sid"] if len(checked) > 1 else None, "method": kind,
            "suffix": suffix, "seed": seed, "metadata": metadata, "given": given,
            **({"grader": grader} if grader else {})}
    # the run (its data read, checked and written to its job dir) before its container: the run's insert is then
    # the store's first write, so a keyed create's transaction holds the store's lock only for the writes
    pending = {"id": None, "model": base, "trainMode": mode}
    try:
        ask = fine_tunes.train_ask(mode, base, TrainData(tuple(refs[:1]), held_out=tuple(refs[1:])), hyper,
                                   # a RFT run's grader, scored by its worker
                                   "hyperparameters", "method.type", reward=grader,
                                   extra={"trainMode": mode, "peftType": "LoRA", "openai": info})
        run = fine_tunes.create_run(platform, pending, ask)
    except BodyError as exc:
        raise _in_openai_words(exc, hyper_field) if exc.field.startswith("hyperparameters.") else exc from None
    container = fine_tunes.create_container(platform, name=suffix or f"openai-{kind}", base_model=base,
                                            base_field="model", train_mode=mode)
    platform.store.update("runs", run["id"], containerId=container["id"])
    name = f"ft:{base}:local:{suffix}:{run['sid'][len(RUN_PREFIX):]}"
    run = platform.store.update("runs", run["id"], openai={**info, "fine_tuned_model": name})
    log.info("fine-tuning job %s queued (%s, base %s)", job_id(run), kind, base)
    return job_view(platform, run)


# ---- reading jobs -----------------------------------------------------------------------------


def job_id(run: dict[str, Any]) -> str:
    return JOB_PREFIX + str(run["sid"])[len(RUN_PREFIX):]


def get_run(platform: TrainingSite, fine_tuning_job_id: str) -> dict[str, Any]:
    run = None
    if fine_tuning_job_id.startswith(JOB_PREFIX):
        run = platform.store.get("runs", RUN_PREFIX + fine_tuning_job_id[len(JOB_PREFIX):])
    if run is None or "openai" not in run:
        raise NotFound(f"No fine-tuning job found with id '{fine_tuning_job_id}'")
    return run


def status(run: dict[str, Any]) -> str:
    if run.get("stopRequested") and run.get("status") in (RunStatus.WAITING.value, RunStatus.RUNNING.value):
        return "cancelled"
    return STATUS.get(str(run.get("status")), "queued")


def hyperparameters(run: dict[str, Any]) -> dict[str, Any]:
    hyper = run.get("hyper") or {}
    # the multiplier of the method's default on the run's base (None: the default mode's)
    defaults = defaults_for(MODES.get(run["openai"]["method"]), run.get("baseModel"))
    out: dict[str, Any] = {"n_epochs": hyper.get("epoch", defaults["epoch"]),
                           "batch_size": hyper.get("batchSize", defaults["batchSize"]),
                           "learning_rate_multiplier": round(float(hyper.get("learningRate", defaults["learningRate"]))
                                                             / float(defaults["learningRate"]), 6)}
    if run["openai"]["method"] == "dpo":
        out["beta"] = hyper.get("beta", "auto")
    return out


def job_view(platform: TrainingSite, run: dict[str, Any]) -> dict[str, Any]:
    """A run in OpenAI's ``fine_tuning.job`` shape."""
    info = run["openai"]
    state = status(run)
    hyper = hyperparameters(run)
    method: dict[str, Any] = {"type": info["method"], info["method"]: {"hyperparameters": hyper}}
    if info.get("grader"):
        method[info["method"]]["grader"] = info["grader"]
    eta = run.get("etaSeconds")
    metrics = run.get("metrics") or {}
    return {"id": job_id(run), "object": "fine_tuning.job", "created_at": int(run["created"]),
            "model": info["model"], "organization_id": ORGANIZATION, "status": state,
            "fine_tuned_model": info.get("fine_tuned_model") if state == "succeeded" else None,
            "finished_at": batch_files.stamp(run.get("finished")) if state in ENDED else None,
            "error": ({"code": "job_failed", "message": run.get("errorMessage") or "the training run failed",
                       "param": None} if state == "failed" else None),
            "hyperparameters": hyper, "method": method, "training_file": info["training_file"],
            "validation_file": info.get("validation_file"), "result_files": [], "seed": info["seed"],
            # billed however the run ended (OpenAI's is null while it runs): a cancelled or failed run trained too;
            # a cancel still stopping its worker says it once the run has ended (its finished_at with it)
            "trained_tokens": (int(metrics.get("trained_tokens") or 0) if run.get("finished") is not None
                               and state in ENDED else None),
            "estimated_finish": int(time.time() + eta) if state == "running" and eta is not None else None,
            "integrations": [], "metadata": info.get("metadata"), "user_provided_suffix": info.get("suffix") or None}


def list_jobs(platform: TrainingSite, after: str | None, limit: int,
              metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Newest first; ``metadata`` keeps the jobs holding all of its pairs."""
    runs = platform.store.all("runs", lambda r: "openai" in r)[::-1]
    if metadata:
        runs = [r for r in runs if all((r["openai"].get("metadata") or {}).get(k) == v for k, v in metadata.items())]
    return batch_files.cursor_page([job_view(platform, r) for r in runs], after, limit)


def retrieve_job(platform: TrainingSite, fine_tuning_job_id: str) -> dict[str, Any]:
    return job_view(platform, get_run(platform, fine_tuning_job_id))


def cancel_job(platform: TrainingSite, fine_tuning_job_id: str) -> dict[str, Any]:
    run = get_run(platform, fine_tuning_job_id)
    state = status(run)
    if state in ENDED:
        raise BodyError("", f"Job has already completed: {fine_tuning_job_id} is {state}")
    platform.supervisor.stop(run["id"])
    return job_view(platform, get_run(platform, fine_tuning_job_id))


# ---- events and checkpoints ----------------------------------------------------------------------


def _epoch(stamp: Any, default: float) -> int:
    """An ISO time (``2024-01-01T00:00:00Z``) or an epoch number as whole seconds."""
    if isinstance(stamp, int | float):
        return int(stamp)
    try:
        return calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return int(default)


def _step_time(run: dict[str, Any], step: int) -> int:
    """When the run reached ``step`` (from its start and pace: progress lines carry no wall time)."""
    started = float(run.get("started") or run["created"])
    current, elapsed = max(1, int(run.get("currentStep") or 1)), float(run.get("elapsedSeconds") or 0.0)
    return int(started + elapsed * step / current)


def _checkpoint_time(run: dict[str, Any], entry: dict[str, Any]) -> int:
    """A checkpoint's time: its own stamp, or (a stamp before the run began) when its step was reached."""
    stamp = _epoch(entry.get("time"), 0)
    return stamp if stamp >= int(run["created"]) else _step_time(run, int(entry["step"]))


def _snake(name: str) -> str:
    """A checkpoint entry's metric name in OpenAI's spelling: ``evalLoss`` -> ``valid_loss``."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return "valid_" + snake[len("eval_"):] if snake.startswith("eval_") else snake


def checkpoint_metrics(entry: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's checkpoint ``metrics``: ``step``, ``train_loss``, ``valid_loss`` (also as
    ``full_valid_loss``: the whole held-out file is scored) and any other score the run keeps
    (``valid_preference_accuracy``, ``valid_reward_margin``, ...)."""
    out: dict[str, Any] = {"step": float(entry["step"])}
    for key, value in entry.items():
        if key in ("step", "path", "time") or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[_snake(key)] = value
    if "valid_loss" in out:
        out["full_valid_loss"] = out["valid_loss"]
    if isinstance(entry.get("metricName"), str) and "metric" in out:  # named: a RFT run's held-out reward
        out[f"valid_{_snake(entry['metricName'])}"] = out["metric"]
    return out


def list_checkpoints(platform: TrainingSite, fine_tuning_job_id: str, after: str | None, limit: int) -> dict[str, Any]:
    """The run's kept checkpoints, newest first, each servable as ``fine_tuned_model_checkpoint``."""
    run = get_run(platform, fine_tuning_job_id)
    name, key = run["openai"]["fine_tuned_model"], str(run["sid"])[len(RUN_PREFIX):]
    items = [{"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{key}-{int(e['step'])}",
              "created_at": _checkpoint_time(run, e), "fine_tuning_job_id": job_id(run),
              "fine_tuned_model_checkpoint": f"{name}:ckpt-step-{int(e['step'])}", "step_number": int(e["step"]),
              "metrics": checkpoint_metrics(e)} for e in run.get("checkpointList") or []]
    return batch_files.cursor_page(items[::-1], after, limit)


def _training_events(run: dict[str, Any], started: int) -> list[tuple[int, str, str, str, dict[str, Any] | None]]:
    """Each step's metrics and each checkpoint, in step order (a checkpoint after its step's metrics), their
    times never going back: a step's time is estimated from the run's pace (weights loading counts in it) and a
    checkpoint's is its own stamp, so an estimate may fall before an earlier checkpoint's stamp."""
    curves = {name: {int(s): v for s, v in run.get(key) or []} for key, name in STEP_CURVES.items()}
    total = int(run.get("totalSteps") or 0)
    items: list[tuple[int, int, int, str, str, dict[str, Any] | None]] = []
    for step, loss in run.get("lossCurve") or []:
        data: dict[str, Any] = {"step": int(step), "train_loss": loss, "total_steps": total}
        data.update((name, curve[int(step)]) for name, curve in curves.items() if int(step) in curve)
        message = f"Step {int(step)}/{total}: training loss={loss:.4f}" + "".join(
            f", {said}={data[name]:.4f}" for name, said in STEP_SAID.items() if name in data)
        items.append((int(step), 0, _step_time(run, int(step)), "metrics", message, data))
    for entry in run.get("checkpointList") or []:
        said = f"Checkpoint created at step {int(entry['step'])}"
        if entry.get(ckpt.DEGENERATE) is True:
            said += f"; its held-out answers degenerated: {entry.get('degeneration') or 'see its answers'}"
        items.append((int(entry["step"]), 1, _checkpoint_time(run, entry), "message", said, None))
    collapse = run.get("collapse")
    if isinstance(collapse, dict):
        items.append((int(collapse["step"]), 2, _epoch(collapse.get("time"), started), "message",
                      collapse_message(collapse), {"collapse": {k: v for k, v in collapse.items() if k != "time"}}))
    out: list[tuple[int, str, str, str, dict[str, Any] | None]] = []
    at = started
    for _, order, when, kind, said, extra in sorted(items, key=lambda i: (i[0], i[1])):
        at = max(at, when)
        out.append((at, "warn" if order == 2 else "info", kind, said, extra))
    return out


def unjudged_message(unjudged: dict[str, Any]) -> str:
    """The event of a run served though most of its held-out answers degenerated, as all of its base's did."""
    return (f"The model's held-out answers degenerated at step {int(unjudged['step'])}, as all of the base's did: "
            f"{unjudged.get('seen') or 'degenerate answers'}. It is served, as it is no worse than its base, but it "
            "does not answer these prompts: read its answers before you use it")


def collapse_message(collapse: dict[str, Any]) -> str:
    """The event of a run whose held-out answers collapsed: the step, what was seen, what the run did."""
    good = collapse.get("lastGoodStep")
    then = (f"training stopped there; the model is step {good}'s checkpoint, the last that still answered"
            if good is not None else "training stopped there; no checkpoint still answered")
    read = "held-out answers"
    if collapse.get("prompts") == "training":  # no held-out data: the final answers to training prompts
        read, then = "answers to its training prompts", "no held-out data was given, so no checkpoint is served"
    return (f"The model's {read} collapsed at step {int(collapse['step'])}: "
            f"{collapse.get('seen') or 'degenerate answers'}; {then}")


#: a DPO, KTO or RFT job without a validation file and too few examples to hold some out (split.DEFAULT_SPLIT_MIN_ROWS)
NO_VALIDATION = (
    "No validation file, and too few training examples to hold some out: the checkpoints cannot be judged by "
    "their answers to prompts the model did not train on, where a preference-tuned model collapses first (one "
    "answer to most questions); only its final answers to 8 training prompts are read. Give a validation_file of "
    "a few held-out lines, and the run stops at a collapse and serves the last checkpoint that still answered")


def _splits_by_default(mode: str) -> bool:
    """Whether a run of ``mode`` holds prompts out when given none (an unknown mode: no)."""
    return mode in MODE_TABLE and MODE_TABLE[mode].split_by_default


def _held_by_default(run: dict[str, Any]) -> str:
    """The creation event of a job whose validation data the platform held out of its training file."""
    return (f"No validation file: {run['evalRows']} of the {run['evalRows'] + run['rows']} training examples "
            f"({run['defaultSplit']} %) are held out as validation data and not trained on. The checkpoints are "
            "judged by their answers to them, where a preference-tuned model collapses first: the run stops at a "
            "collapse and serves the last checkpoint that still answered. Give a validation_file to train on every "
            "example")


def _events(run: dict[str, Any]) -> list[tuple[int, str, str, str, dict[str, Any] | None]]:
    """``(time, level, type, message, data)`` of everything the run did, oldest first."""
    info, created = run["openai"], float(run["created"])
    out: list[tuple[int, str, str, str, dict[str, Any] | None]] = [
        (int(created), "info", "message", f"Created fine-tuning job: {job_id(run)}", None),
        (int(created), "info", "message", f"Validating training file: {info['training_file']}"
         + (f" and validation file: {info['validation_file']}" if info.get("validation_file") else ""), None),
        (int(created), "info", "message", "Files validated, moving job to queued state", None)]
    if run.get("defaultSplit"):
        out.append((int(created), "info", "message", _held_by_default(run), None))
    elif not run.get("evalRows") and _splits_by_default(str(run.get("trainMode"))):
        out.append((int(created), "warn", "message", NO_VALIDATION, None))
    started = run.get("started")
    if started:
        out.append((int(started), "info", "message", "Fine-tuning job started", None))
        out.extend(_training_events(run, int(started)))
    state, ended = status(run), int(float(run.get("finished") or time.time()))
    if state == "succeeded":
        out.append((ended, "info", "message", f"New fine-tuned model created: {info['fine_tuned_model']}", None))
        unjudged = (run.get("metrics") or {}).get("served_unjudged")
        if isinstance(unjudged, dict):
            out.append((ended, "warn", "message", unjudged_message(unjudged), {"served_unjudged": unjudged}))
        best = ckpt.best_checkpoint(run.get("checkpointList") or [])
        if best is not None:
            out.append((ended, "info", "message", f"The best checkpoint by its held-out score is at step "
                        f"{int(best['step'])}: {info['fine_tuned_model']}:ckpt-step-{int(best['step'])}", None))
        out.append((ended, "info", "message", "The job has successfully completed", None))
    elif state == "failed":
        out.append((ended, "error", "message", f"The job failed: {run.get('errorMessage') or 'unknown error'}", None))
    elif state == "cancelled":
        out.append((ended, "info", "message", "The job was cancelled", None))
    out.sort(key=lambda e: e[0])
    return out


def list_events(platform: TrainingSite, fine_tuning_job_id: str, after: str | None, limit: int) -> dict[str, Any]:
    """The job's events, newest first (OpenAI's order)."""
    run = get_run(platform, fine_tuning_job_id)
    key = str(run["sid"])[len(RUN_PREFIX):]
    items = [{"object": "fine_tuning.job.event", "id": f"ftevent-{key}-{n:05d}", "created_at": at, "level": level,
              "type": kind, "message": message, "data": data}
             for n, (at, level, kind, message, data) in enumerate(_events(run))]
    return batch_files.cursor_page(items[::-1], after, limit)


__all__ = ["ACCEPTS", "MODES", "cancel_job", "check_file", "create_job", "job_view",
           "list_checkpoints", "list_events", "list_jobs", "retrieve_job"]
