"""The console's fine-tunes, shared by the v1 and v2 routes and OpenAI's jobs: the bases a run trains, a
container, a door's request as one ``TrainAsk``, its rows, the run queued (its job dir: Contract 4), its progress.

Functions take and return plain records; the route modules shape them into each API version's wire fields.
Naming (reference §3.0): container = v1 task = v2 job (``ft_jobs``); run = v1 job = v2 task (``runs``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from qfnb.local.domain.state.datasets import iter_dataset_rows, iter_file_rows
from qfnb.local.domain.state.seed_names import FINETUNE_NAMES, notice
from qfnb.local.domain.state.site import TrainingSite, get
from qfnb.local.domain.state.store import new_sid
from qfnb.local.domain.state.values import BodyError
from qfnb.local.domain.training import caps
from qfnb.local.domain.training.jobs import REWARD_CURVES
from qfnb.local.domain.training.split import held_rows, split_for
from qfnb.local.engines.store.byom import parameter_count
from qfnb.protocol.console import checkpoints as ckpt
from qfnb.protocol.console import train_formats, train_modes
from qfnb.protocol.console.enums import RunStatus
from qfnb.protocol.console.rewards import RewardSpec, RewardSpecError, parse_reward
from qfnb.protocol.console.train_ask import TrainAsk, TrainData
from qfnb.protocol.console.train_modes import ModeRow

log = logging.getLogger("qfnb.local.domain.training.fine_tunes")

TRAINABLE_KINDS = ("transformers", "llama.cpp")


def trainable_models(platform: TrainingSite) -> list[Any]:
    """Base models a run can fine-tune (served chat models of a trainable kind)."""
    return [m for m in platform.base_models() if "chat" in m.api_types and m.kind in TRAINABLE_KINDS]


def resolve_base(platform: TrainingSite, name: Any, field: str) -> str:
    """The served model name for a requested base model (case-insensitive, aliases honoured)."""
    if not isinstance(name, str) or not name:
        raise BodyError(field, "is required: the base model to fine-tune")
    models = trainable_models(platform)
    wanted = platform.settings.aliases.get(name.lower(), name).lower()
    for m in models:
        if wanted in (m.name.lower(), m.endpoint.lower()):
            return str(m.name)
    if models and name.lower() in {n.lower() for n in FINETUNE_NAMES}:
        notice(name, str(models[0].name))
        return str(models[0].name)
    listing = ", ".join(m.name for m in models) or "none"
    raise BodyError(field, f"base model {name!r} cannot be fine-tuned on the local platform; it trains: {listing} "
                    "(or map the name with QFNB_MODEL_ALIASES)")


def create_container(platform: TrainingSite, *, name: Any, base_model: Any, base_field: str,
                     train_mode: str | None = None, description: str = "", parameter_scale: str = "LoRA",
                     base_optional: bool = False) -> dict[str, Any]:
    """A fine-tune container; with ``base_optional`` (v1 ``create_task(name, description)``,
    as the official docs call it) the base model may come later, from the first job."""
    if not isinstance(name, str) or not name.strip():
        raise BodyError("name", "is required and must be a non-empty string")
    base = None if base_optional and base_model is None else resolve_base(platform, base_model, base_field)
    return platform.store.insert("ft_jobs", {"name": name, "description": description or "", "model": base,
                                             "trainMode": check_mode(train_mode),
                                             "parameterScale": parameter_scale})


def check_mode(value: Any, field: str = "trainMode") -> str:
    """The train mode ``value`` names (:data:`qfnb.protocol.console.train_formats.MODES`); BodyError
    naming ``field``."""
    try:
        return train_formats.train_mode(value or None, field)
    except ValueError as exc:
        raise BodyError(field, str(exc).removeprefix(f"{field}: ")) from None


def check_hyper(raw: Any, field: str, train_mode: str | None = None, base: str | None = None) -> dict[str, Any]:
    """Hyper-parameters with the ``train_mode`` run's defaults on ``base`` filled in (its row's:
    :func:`qfnb.protocol.console.train_modes.check_hyper`: a preference run's ``beta``, its measured learning
    rate and anti-collapse terms...); BodyError naming the bad key."""
    if not isinstance(raw, dict | None):
        raise BodyError(field, "must be an object")
    try:
        hyper = train_modes.check_hyper(train_modes.mode_row(check_mode(train_mode)), raw, field, base)
    except train_modes.AskError as exc:
        raise BodyError(exc.field, exc.message) from None
    caps.check_caps(hyper, field)
    return hyper


def train_ask(mode: Any, base: str, data: TrainData, hyper: Any, hyper_field: str, mode_field: str = "trainMode",
              **rest: Any) -> TrainAsk:
    """A door's request as the one :class:`~qfnb.protocol.console.train_ask.TrainAsk`, within this machine's
    caps (:mod:`~qfnb.local.domain.training.caps`); BodyError naming the field (the mode's, a hyperparameter's)
    it cannot take."""
    if not isinstance(hyper, dict | None):
        raise BodyError(hyper_field, "must be an object")
    try:
        ask = TrainAsk.build(check_mode(mode, mode_field), base, data, hyper, hyper_field, mode_field, **rest)
    except train_modes.AskError as exc:
        raise BodyError(exc.field, exc.message) from None
    caps.check_caps(ask.run_hyper, hyper_field)
    return ask


def _ref_rows(platform: TrainingSite, field: str, ref: Any) -> Iterator[dict[str, Any]]:
    """The rows of one dataset reference (a dataset id or a ``bos:/`` file), one at a time."""
    if isinstance(ref, str) and ref.startswith("bos:"):
        try:
            yield from iter_file_rows(platform.objects.from_uri(ref))
        except ValueError as exc:
            raise BodyError(field, str(exc)) from exc
        return
    ds = platform.store.get_or_raise("datasets", ref, BodyError(field, f"dataset {ref!r} not found"))
    yield from iter_dataset_rows(platform.settings.data_dir, ds)


def training_rows(platform: TrainingSite, refs: list[tuple[str, Any]] | tuple[tuple[str, Any], ...],
                  mode: ModeRow) -> Iterator[dict[str, Any]]:
    """The rows a ``mode`` run trains on, from dataset references ``(field, dataset id | bos uri)``, one at a
    time (a file is never held whole): a mode of records' records (:mod:`qfnb.protocol.console.train_formats`,
    in their canonical form; BodyError naming the dataset's field and row, and what the row looks like when it
    is another mode's data), else the turns whose prompt and response are both given."""
    for field, ref in refs:
        rows = _ref_rows(platform, field, ref)
        if not mode.records:
            yield from (r for r in rows if r.get("prompt") and r.get("response"))
            continue
        for no, row in enumerate(rows, 1):
            item = row.get("record", {"prompt": row.get("prompt"), "response": row.get("response")})
            try:
                yield from (train_formats.to_wire(r) for r in train_formats.parse_item(mode.name, item, f"line {no}"))
            except train_formats.FormatError as exc:
                raise BodyError(field, str(exc)) from None


def count_rows(platform: TrainingSite, refs: list[tuple[str, Any]] | tuple[tuple[str, Any], ...], mode: ModeRow) -> int:
    """How many rows the references give, every one checked and none kept; BodyError when there are none."""
    n = sum(1 for _ in training_rows(platform, refs, mode))
    if not n:
        field = refs[0][0] if refs else "dataset"
        if not mode.records:
            raise BodyError(field, "the training data has no prompt/response pairs")
        raise BodyError(field, f"the training data has no records; a {mode.name} run wants "
                        f"{train_formats.wants(mode.name)}")
    return n


def check_checkpoint_options(hyper: dict[str, Any], field: str, held_out_rows: int) -> dict[str, Any]:
    """``hyper`` with the checkpoint options checked (qfnb.protocol.console.checkpoints): ``checkpoints``
    defaults to :data:`~qfnb.protocol.console.checkpoints.DEFAULT_CHECKPOINTS` with a validation split;
    ``earlyStop`` and ``evalMetric`` need one."""
    hyper = dict(hyper)
    if hyper.get("earlyStop") is not None and not isinstance(hyper["earlyStop"], bool):
        raise BodyError(f"{field}.earlyStop", f"must be true or false, got {hyper['earlyStop']!r:.40}")
    metric = hyper.get("evalMetric")
    if metric is not None and metric not in ckpt.METRICS:
        raise BodyError(f"{field}.evalMetric", f"must be one of {', '.join(ckpt.METRICS)}, got {metric!r:.40}")
    for key in ("earlyStop", "evalMetric"):
        if hyper.get(key) and not held_out_rows:
            raise BodyError(f"{field}.{key}", "needs a validation split (splitRatio > 0): checkpoints are "
                            "judged on held-out rows")
    if hyper.get("checkpoints") is None:
        hyper["checkpoints"] = ckpt.DEFAULT_CHECKPOINTS if held_out_rows or hyper.get("earlyStop") else 0
    if hyper.get("earlyStop") and not hyper["checkpoints"]:
        raise BodyError(f"{field}.checkpoints", "must be at least 1 with earlyStop: it stops between checkpoints")
    return hyper


def continued_from(platform: TrainingSite, task: Any, step: Any) -> Path | None:
    """The checkpoint adapter ``incrementTaskId``/``incrementCheckpointStep`` name (None: a new LoRA)."""
    if task is None or task == "":
        if step is not None:
            raise BodyError("incrementTaskId", "is required with incrementCheckpointStep")
        return None
    run = platform.store.get_or_raise("runs", task, BodyError("incrementTaskId", f"task {task!r} not found"))
    if run.get("status") != RunStatus.DONE.value:
        raise BodyError("incrementTaskId", f"task {run['sid']} is {run.get('status')}, not Done")
    if step is None:
        return Path(run["adapter_dir"]) if run.get("adapter_dir") else None
    return Path(str(run_checkpoint(run, step, "incrementCheckpointStep")["path"]))


def run_checkpoint(run: dict[str, Any], which: Any, field: str, said: str = "") -> Mapping[str, Any]:
    """The checkpoint of ``run`` that ``which`` names (``best``, ``last``, a step: ``ckpt.choose``); BodyError
    naming ``field`` (why after ``said``) when it names none."""
    try:
        return ckpt.choose(run.get("checkpointList") or [], which)
    except ValueError as exc:
        raise BodyError(field, f"{said}{exc}") from None


def create_run(platform: TrainingSite, container: dict[str, Any], ask: TrainAsk) -> dict[str, Any]:
    """Prepare the job dir (train file, the held-out eval file, spec.json: Contract 4) and queue the
    run ``ask`` asks for in ``container``: its data checked in its mode's format before anything is written,
    its rows held out by its split or read from its own held-out files, on a cluster when it names one."""
    mode, hyper_field = ask.mode, ask.hyper_field
    if caps.reads_only_known(platform.settings.worker_command):
        caps.check_known(ask.run_hyper, hyper_field)
    rl = rft_reward(ask.reward, ask.target) if mode.rewarded else None
    if not mode.generation_metric and ask.hyper.get("evalMetric") is not None:
        raise BodyError(f"{hyper_field}.evalMetric", f"scores SFT answers; a {mode.name} run's checkpoints are "
                        "scored by its own held-out measure")

    # the data is read twice, a row at a time, and never held: once to check and count it (before anything
    # is written), once to write the run's files
    refs, eval_refs = ask.data.train, ask.data.held_out
    n_rows = count_rows(platform, refs, mode)
    seed = int(ask.hyper.get("seed", 42))
    split = ask.data.split
    percent, by_default = (0, False) if eval_refs else split_for(mode, n_rows, split[1], split[0])
    held = held_rows(training_rows(platform, refs, mode), percent, seed, split[0])
    n_eval = count_rows(platform, eval_refs, mode) if eval_refs else len(held)
    n_train = n_rows - len(held)
    hyper = check_checkpoint_options(ask.run_hyper, hyper_field, n_eval)
    model_path = (platform.settings.model_paths.get(str(container["model"]).lower())
                  or platform.registry.train_path(str(container["model"])))  # an added model's weights
    # sized before anything is written: an added base's weights, or a built-in base's GGUF
    sized = model_path or platform.registry.weights_of(str(container["model"]))
    problem = platform.registry.training_problem(sized) if sized else None
    if problem:
        raise BodyError("trainType", problem)
    caps.check_steps(hyper, n_train, hyper_field)
    if sized:
        caps.check_disk(hyper, parameter_count(sized), platform.settings.data_dir, hyper_field)
    sid = new_sid("task-")
    job_dir = platform.settings.data_dir / "jobs" / sid
    job_dir.mkdir(parents=True, exist_ok=True)
    try:
        _write_split(job_dir, training_rows(platform, refs, mode), held, mode)
        if eval_refs:
            with open(job_dir / "eval.jsonl", "w", encoding="utf-8") as held_file:
                held_file.writelines(_line(row, mode) for row in training_rows(platform, eval_refs, mode))
    except BaseException:  # a file changed since it was checked: nothing of the run is left
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    spec = {"base_model": container["model"], "train_file": str(job_dir / "train.jsonl"),
            "hyper": {k: v for k, v in hyper.items() if k != "seed"}, "seed": seed, "train_mode": mode.name,
            # its optional starting points: an added base's weights, the adapter it continues, its cluster
            **({"base_model_path": str(model_path)} if model_path is not None else {}),
            **({"init_adapter": ask.init_adapter} if ask.init_adapter is not None else {}),
            **({"target": ask.target, "ray_workers": ask.ray_workers or 1} if ask.target else {})}
    extra = dict(ask.extra)
    if rl is not None:
        spec["reward"] = rl.to_wire()
        extra["rewardSource"] = "client" if rl.from_client else rl.describe()
    if n_eval:  # never trained on: the worker reads them only for the evaluation loss
        spec["eval_file"] = str(job_dir / "eval.jsonl")
    (job_dir / "spec.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    run = platform.store.insert("runs", {"containerId": container["id"], "status": RunStatus.WAITING.value,
                                         "hyper": hyper, "baseModel": container["model"], "rows": n_train,
                                         "job_dir": str(job_dir), "currentStep": 0, "totalSteps": 0,
                                         "lossCurve": [], "evalRows": n_eval, "trainMode": mode.name,
                                         **({"evalLossCurve": []} if n_eval else {}),
                                         # held out by the platform, no split named (DPO, KTO, RFT)
                                         **({"defaultSplit": percent} if by_default and held else {}),
                                         **({"target": ask.target} if ask.target else {}), **extra}, sid=sid)
    platform.supervisor.submit(run["id"])
    log.info("queued fine-tune task %s (%d rows, %d held out%s, base %s)", run["sid"], n_train, n_eval,
             " by default" if by_default and held else "", container["model"])
    return get(platform, "runs", run["id"], "taskId")


def _line(row: dict[str, Any], mode: ModeRow) -> str:
    """One row of a run's file: SFT's prompt/response pair (a ``system`` prompt kept), or another mode's
    record (already in its canonical form)."""
    if not mode.records:
        row = {"prompt": row["prompt"], "response": row["response"],
               **({"system": row["system"]} if row.get("system") else {})}
    return json.dumps(row, ensure_ascii=False) + "\n"


def _write_split(job_dir: Path, rows: Iterable[dict[str, Any]], held: set[int], mode: ModeRow) -> None:
    """``train.jsonl`` and (some held out) ``eval.jsonl``: the rows at the ``held`` indices go to the
    latter, a line at a time."""
    with contextlib.ExitStack() as files:
        train = files.enter_context(open(job_dir / "train.jsonl", "w", encoding="utf-8"))
        kept = files.enter_context(open(job_dir / "eval.jsonl", "w", encoding="utf-8")) if held else train
        for i, row in enumerate(rows):
            (kept if i in held else train).write(_line(row, mode))


def rft_reward(raw: Any, target: str | None) -> RewardSpec:
    """A RFT run's reward source, checked: ``{"source": "client"}`` (the default: the user's function,
    in the user's process) or a declarative grader; BodyError naming ``reward``."""
    if target:
        raise BodyError("target", "a RFT run trains on the local platform's own worker, not on a cluster")
    try:
        return parse_reward(raw)
    except RewardSpecError as exc:
        field, _, message = str(exc).partition(": ")
        raise BodyError(field, message) from None


def progress_fields(run: dict[str, Any]) -> dict[str, Any]:
    """Contract 3's extra fields of a run."""
    out = {"currentStep": run.get("currentStep", 0), "totalSteps": run.get("totalSteps", 0),
           "lossCurve": run.get("lossCurve", []), "elapsedSeconds": run.get("elapsedSeconds"),
           "etaSeconds": run.get("etaSeconds")}
    if "evalLossCurve" in run:  # a run with a validation split: its evaluation loss, [[step, loss], ...]
        out["evalLossCurve"] = run["evalLossCurve"]
    held_out = Path(str(run.get("job_dir") or "")) / "eval.jsonl"
    if run.get("evalRows") and held_out.is_file():  # the split's rows, kept with the task (for %qfeval)
        out["evalFile"] = str(held_out)
    if run.get("checkpointList"):  # the saved checkpoints, as the platform lists them, and the decision
        saved = [{k: v for k, v in e.items() if k != "path"} for e in run["checkpointList"]]
        out["checkpointList"] = saved
        best = ckpt.best_checkpoint(saved)
        out["bestCheckpoint"] = None if best is None else best["step"]
        over = ckpt.overfitting([(e["step"], e["evalLoss"]) for e in saved if "evalLoss" in e])
        if over is not None:
            out["overfitting"] = over.to_wire()
    # where the held-out answers collapsed, what the worker does before step 1 (loading weights, ...), why it failed
    out.update({key: run[key] for key in ("collapse", "phase", "errorMessage") if run.get(key)})
    # a model served though most of its held-out answers degenerated, as all of its base's did (the worker's)
    if isinstance(unjudged := (run.get("metrics") or {}).get("served_unjudged"), dict):
        out["servedUnjudged"] = unjudged
    if run.get("rewardSource"):  # a RFT run's reward curves, where its rewards come from ("client": the user's
        # function, or the grader that scores them) and, while it runs, how many batches of samples wait for the client
        out.update({key: run[key] for key in REWARD_CURVES if key in run}, rewardSource=run["rewardSource"])
        if run["rewardSource"] == "client" and run.get("status") == RunStatus.RUNNING.value:
            out["rewardRequestsPending"] = len(list((Path(str(run.get("job_dir"))) / "rewards").glob("request-*.json")))
    if run.get("resumes"):  # its worker was killed and it went on from its last resume point
        out.update(resumes=run["resumes"], resumedFrom=run.get("resumedFrom"))
    return out


def percent(run: dict[str, Any]) -> int:
    if run.get("status") == RunStatus.DONE.value:
        return 100
    total = run.get("totalSteps") or 0
    return int(100 * (run.get("currentStep") or 0) / total) if total else 0
