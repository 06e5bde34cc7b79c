"""A qfnb fine-tune as a Ray Train job, run on the cluster::

    python -m qfnb.local.cluster.ray_train [--workers N] [--cpus C] [--storage PATH_OR_URI]

The job's working dir holds the run's ``spec.json`` and its data (``train.jsonl``, ``eval.jsonl``),
as the local platform prepares them. A ``ray.train.torch.TorchTrainer`` with ``N`` workers
(``ScalingConfig(num_workers=N)``, ``C`` CPUs each) runs qfnb's own training loop
(:func:`qfnb.local.training.process.worker.run`: LoRA in the spec's ``train_mode``, checkpoints scored on the
held-out split) in a job dir of its own on each worker. With more than one, the workers train data-parallel
in the process group Ray Train joins them in (gloo on CPU, :mod:`qfnb.local.training.process.distributed`): each on its
shard of the rows, the gradients averaged by ``DistributedDataParallel``; rank 0 scores and keeps
the checkpoints. Rank 0:

* prints each ``progress.jsonl`` line as it is written, ``QFNB-TRAIN {line}`` (the platform that
  submitted the job follows them: the dashboard's loss curve, its checkpoints);
* reports each checkpoint to Ray Train (``ray.train.report``) with its held-out scores as metrics,
  and the final adapter last, so Ray keeps them all in the run's storage (``--storage``); with
  several workers it reports them when training ends (every worker must report as often, and
  ``report`` waits for all of them);
* when training ends, the driver picks the best checkpoint by qfnb's rule
  (:func:`qfnb.protocol.console.checkpoints.best_checkpoint`) and prints it and the final adapter back as
  ``QFNB-FILE`` lines (base64 pieces), then the worker's result as ``QFNB-RESULT {result}``.

The base model's weights must be on every node that runs a worker (``base_model_path``, or the
named model in the node's qfnb model cache): a node without them fails the job with the path it
looked in. A cluster with fewer CPUs than the workers take is refused before training starts.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qfnb.local.cluster.jobs import FILE_PREFIX, RESULT_PREFIX, TRAIN_PREFIX, print_line, unfinished
from qfnb.protocol.console import checkpoints as ckpt

log = logging.getLogger("qfnb.local.cluster.ray_train")

#: the job dir's files a run is made of (what the working dir carries)
JOB_FILES = ("spec.json", "train.jsonl", "eval.jsonl")
#: bytes of a file in one ``QFNB-FILE`` line (before base64)
PIECE = 48 * 1024


def file_lines(folder: Path, as_path: str) -> Iterator[str]:
    """``folder``'s files as ``QFNB-FILE`` lines, each named ``as_path/<relative path>``."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        parts = max(1, -(-len(data) // PIECE))
        name = f"{as_path}/{path.relative_to(folder).as_posix()}"
        for part in range(parts):
            piece = base64.b64encode(data[part * PIECE:(part + 1) * PIECE]).decode("ascii")
            yield FILE_PREFIX + json.dumps({"path": name, "part": part, "parts": parts, "data": piece})


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train's worker loop: qfnb's training loop in a thread, its progress followed from here (by
    rank 0; another rank only trains, and reports as often as rank 0 does)."""
    import ray.train
    from ray.train import Checkpoint

    from qfnb.local.training.process import worker  # deferred: it sets the training process's environment (HF offline)

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    job_dir = _job_copy(Path(config["job"]))
    thread = threading.Thread(target=worker.run, args=(job_dir,), name="qfnb-train", daemon=True)
    thread.start()

    def report(metrics: dict[str, Any], path: str | None) -> None:
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(path) if path else None)

    held: list[tuple[dict[str, Any], str | None]] = []  # checkpoints reported once training ends (several workers)
    offset = 0
    while True:
        ended = not thread.is_alive()
        if rank == 0:
            offset = _follow(job_dir / "progress.jsonl", offset,
                             (lambda m, p: held.append((m, p))) if world > 1 else report)
        if ended:
            break
        time.sleep(0.3)
    result = json.loads((job_dir / "result.json").read_text(encoding="utf-8"))
    if world > 1:
        _report_held(rank, world, result, held, report)
        if rank != 0:
            return
    report({"final": 1, "qfnb_result": json.dumps(result)}, result.get("adapter_dir"))


def _job_copy(driver_dir: Path) -> Path:
    """A job dir of this worker's own holding the run's files: from the job's working dir, the
    driver's on this node, else this worker's own copy (its cwd)."""
    source = next((d for d in (driver_dir, Path.cwd()) if (d / JOB_FILES[0]).is_file()), None)
    if source is None:
        raise FileNotFoundError(f"no {JOB_FILES[0]} in the job's working dir on this node ({driver_dir})")
    job_dir = Path(tempfile.mkdtemp(prefix="qfnb-ray-train-"))
    for name in JOB_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, job_dir / name)
    return job_dir


def _report_held(rank: int, world: int, result: dict[str, Any], held: list[tuple[dict[str, Any], str | None]],
                 report: Any) -> None:
    """With several workers: rank 0's checkpoints, reported now (every rank reports as often: ``report``
    waits for all of them); another rank's final report, empty. A worker whose training failed fails the
    whole run (the others wait on it)."""
    import torch.distributed as dist

    if result.get("status") == "Failed":
        raise RuntimeError(f"Ray Train worker {rank} of {world}: {result.get('error')}")
    count = [len(held)]
    dist.broadcast_object_list(count, src=0)
    for metrics, path in held if rank == 0 else [({}, None)] * int(count[0]):
        report(metrics, path)
    if rank != 0:
        report({}, None)


def _follow(progress: Path, offset: int, report: Any) -> int:
    """Print the progress lines written since ``offset``; a checkpoint line goes to ``report(metrics,
    its adapter's path)``."""
    try:
        with open(progress, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return offset
    for raw in chunk[:end].splitlines():
        try:
            point = json.loads(raw)
        except ValueError:
            continue
        print_line(TRAIN_PREFIX + json.dumps(point))
        entry = point.get("checkpoint")
        if isinstance(entry, dict) and entry.get("path"):
            scores = {k: float(entry[k]) for k in ("trainLoss", "evalLoss", "metric") if entry.get(k) is not None}
            report({"step": int(entry["step"]), **scores, "qfnb_checkpoint": json.dumps(entry)}, entry["path"])
    return offset + end + 1


def fit(job: Path, *, cpus: float, storage: str, workers: int = 1) -> dict[str, Any]:
    """Run the Ray Train job on ``workers`` workers; prints the best checkpoint and the final adapter
    back, returns the result."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    name = f"qfnb-train-{int(time.time())}"
    kept_at = {"ray_storage": f"{storage.rstrip('/')}/{name}"}  # every checkpoint, kept by Ray Train
    trainer = TorchTrainer(
        train_loop, train_loop_config={"job": str(job)},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(name=name, storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=None)))
    try:
        fitted = trainer.fit()
    except Exception as exc:  # a worker failed (Ray Train ends them all): the run's result says why
        log.exception("the Ray Train run failed")
        return {**unfinished(str(exc)[:2000]), **kept_at}
    kept = [(metrics, cp) for cp, metrics in (fitted.best_checkpoints or [])]
    finals = [m for m in [fitted.metrics or {}, *(m for m, _ in kept)] if m.get("qfnb_result")]
    result: dict[str, Any] = json.loads(finals[0]["qfnb_result"]) if finals else unfinished(
        "the Ray Train run reported no result")
    entries = [(json.loads(m["qfnb_checkpoint"]), cp) for m, cp in kept if m.get("qfnb_checkpoint")]
    best = ckpt.best_checkpoint([e for e, _ in entries])
    sent = [(cp, f"checkpoints/step-{entry['step']}") for entry, cp in entries
            if best is not None and entry["step"] == best["step"]]
    finals_cp = [cp for m, cp in kept if m.get("qfnb_result")] or ([fitted.checkpoint] if fitted.checkpoint else [])
    if result.get("adapter_dir") and finals_cp:
        sent.append((finals_cp[0], "adapter"))
    for cp, as_path in sent:  # the best checkpoint, then the final adapter
        with cp.as_directory() as folder:
            print_line("\n".join(file_lines(Path(folder), as_path)))
    return {**result, **kept_at}


def capacity_problem(workers: int, cpus: float, cluster_cpus: float) -> str | None:
    """Why ``workers`` training workers of ``cpus`` CPUs each cannot all start on a cluster of
    ``cluster_cpus`` CPUs (Ray Train would wait for them for good); None when they can."""
    if workers < 1:
        return f"rayTrainWorkers must be at least 1, got {workers}"
    if workers * cpus > cluster_cpus:
        return (f"{workers} Ray Train workers of {cpus:g} CPU each need {workers * cpus:g} CPUs; the cluster has "
                f"{cluster_cpus:g}: ask for fewer workers (ray_workers= / --ray-workers) or add nodes")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qfnb.local.cluster.ray_train", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers training data-parallel")
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs each training worker takes")
    parser.add_argument("--storage", default=os.environ.get("QFNB_RAY_STORAGE") or "",
                        help="where Ray Train keeps the run's checkpoints (shared by every node; default: a temp dir)")
    args = parser.parse_args(argv)
    import ray

    # the job's workers (Ray Train's own actors among them) find this cluster by RAY_ADDRESS: without it
    # they look for one, and fail on a machine that runs another Ray ("Found multiple active Ray instances")
    address = os.environ.get("RAY_ADDRESS")
    ray.init(logging_level=logging.WARNING,
             runtime_env={"env_vars": {"RAY_ADDRESS": address}} if address else None)
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    problem = capacity_problem(args.workers, args.cpus, float(resources.get("CPU", 0)))
    result = unfinished(problem) if problem is not None else fit(
        Path.cwd(), cpus=args.cpus, workers=args.workers,
        storage=args.storage or tempfile.mkdtemp(prefix="qfnb-ray-train-storage-"))
    print_line(RESULT_PREFIX + json.dumps(result))
    return 0 if result.get("status") in ("Done", "Stopped") else 1


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
