"""The fine-tune worker process (Contract 4): ``python -m qfnb.local.training.process.worker <job_dir>``.

Reads ``spec.json``, trains a LoRA adapter in its ``train_mode`` (SFT, PostPretrain, DPO, KTO, RFT:
:mod:`qfnb.local.training.modes` dispatches), appends one ``progress.jsonl`` line per step (and, with an
``eval_file``, one with the held-out split's ``eval_loss`` at intervals), saves the adapter
to ``adapter/`` and writes ``result.json`` (Done / Failed / Stopped). SIGTERM stops it cleanly
between steps; the adapter trained so far is still saved. A worker started again on a job dir with a
resume point (:mod:`qfnb.local.training.resume`, kept at each checkpoint and every minute) goes on from it.

With ``hyper.checkpoints`` K, the adapter is also saved K times evenly over the run
(``checkpoints/step-N/``), each scored on the held-out split where the model already is (its loss,
and ``evalMetric`` on a few held-out items) and reported as a ``checkpoint`` line; the held-out
curve is then measured at the checkpoints only. ``earlyStop`` ends the run once ``earlyStopPatience``
checkpoints brought no improvement (:mod:`qfnb.protocol.console.checkpoints` decides).

Each checkpoint also answers a few held-out prompts (``evalMetricItems``; :mod:`qfnb.local.training.answers`),
judged for degeneration beside the base's answers. The first degenerate checkpoint stops the run there (its
answers collapsed: a ``collapse`` progress line and ``metrics["collapse"]``) and the adapter the run leaves is
the best checkpoint that still answered; when none did, the run fails saying what was seen and what to lower.

In a ``torch.distributed`` group of several workers (a Ray Train job with more than one,
:mod:`qfnb.local.training.process.distributed`) each trains on its shard of the rows with the gradients
averaged over the group; rank 0 alone scores and saves checkpoints, and its ``progress.jsonl`` (the
mean loss over the group) and adapter are the run's.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.local.training import answers, data, lora, modes, resume, rft
from qfnb.local.training.evaluate import MetricSet, budget_rows, every
from qfnb.local.training.process import distributed
from qfnb.local.training.spec import load_spec, progress_note
from qfnb.protocol.console import checkpoints as ckpt
from qfnb.protocol.console.train_modes import MODE_TABLE
from qfnb.protocol.platform.files import write_private_json

log = logging.getLogger("qfnb.local.training")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class _StopFlag:
    requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        log.info("signal %d received: stopping after the current step", signum)
        self.requested = True


def run(job_dir: Path, stop: _StopFlag | None = None) -> dict[str, Any]:
    """Train as ``job_dir/spec.json`` says; returns (and writes) the result."""
    stop = stop or _StopFlag()
    job_dir = Path(job_dir).resolve()
    started = time.time()
    metrics: dict[str, Any] = {}
    try:
        status, adapter = _train(job_dir, stop, metrics)
        result = {"status": status, "metrics": metrics, "adapter_dir": str(adapter), "error": None}
    except Exception as exc:  # the worker's contract is to report every failure in result.json
        log.exception("training failed")
        message = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
        result = {"status": "Failed", "metrics": metrics, "adapter_dir": None, "error": message}
    metrics["wall_seconds"] = round(time.time() - started, 3)
    if result["status"] != "Stopped":  # a stopped run keeps its resume point: a signal not the user's stops it too
        resume.discard(job_dir)
    write_private_json(job_dir / "result.json", result)
    return result


def _train(job_dir: Path, stop: _StopFlag, metrics: dict[str, Any]) -> tuple[str, Path]:
    spec = load_spec(job_dir)
    row = MODE_TABLE[spec.train_mode]
    if row.rewarded:  # group-relative policy optimisation with a reward: a loop of its own
        return rft.train(job_dir, spec, stop, metrics)
    hyper = spec.hyper
    mode = modes.mode_for(spec)
    examples, held = mode.load(spec)  # fail fast on bad data, before loading torch
    import torch

    group = distributed.current()
    if not group.main:  # rank 0 alone scores the checkpoints
        held = []
    torch.manual_seed(spec.seed)
    t0 = time.time()
    _phase(job_dir, "loading the base model's weights")
    model, tok = lora.load_base(lora.base_model_dir(spec))
    _phase(job_dir, "weights loaded; tokenising the data")
    encoded = mode.encode(tok, examples, hyper)
    rows = group.shard(encoded)
    total = hyper.total_steps(len(rows))
    # the held-out loss is measured at each checkpoint, else every ``every`` steps
    points = (len(ckpt.checkpoint_steps(total, hyper.checkpoints))
              or math.ceil(total / every(total, hyper.logging_steps)))
    metric = (MetricSet(hyper.eval_metric, held[:hyper.eval_metric_items], tok)
              if held and hyper.eval_metric and hyper.checkpoints and row.generation_metric else None)
    model = lora.with_lora(model, hyper, spec.init_adapter)
    metrics["gradient_checkpointing"] = lora.fit_activations(model, hyper.batch_size,
                                                             max((mode.tokens(r) for r in rows), default=1))
    answer_set = _answer_set(job_dir, model, tok, held, hyper, metric is None)
    mode.start(model, tok, hyper)
    held_rows = list(mode.encode(tok, held, hyper))[:budget_rows(total, hyper.batch_size, points)] if held else []
    evals = mode.scorer(held_rows, hyper, len(held_rows)) if held else None
    model.train()
    metrics["load_seconds"] = round(time.time() - t0, 3)
    trainable = [p for p in model.parameters() if p.requires_grad]
    metrics["trainable_params"] = sum(p.numel() for p in trainable)
    metrics["examples"] = len(encoded)
    if not row.default:
        metrics["train_mode"] = row.name
    if group.world > 1:
        metrics.update(workers=group.world, examples_per_worker=len(rows))
    if evals is not None and "valid_perplexity" in row.scores:  # the base's, to compare the run's with
        metrics["base_valid_perplexity"] = round(evals.score(model)["valid_perplexity"], 4)
    optimizer = torch.optim.AdamW(trainable, lr=hyper.learning_rate, weight_decay=0.0)
    log.info("training %s (%s): %d examples (%d held out), %d steps", spec.base_model, row.name, len(rows),
             len(held), total)
    _phase(job_dir, f"data tokenised ({len(rows)} examples"
           + (f", {len(held)} held out for the evaluation loss" if held else "")
           + f"); training {hyper.schedule(len(rows))}", total)

    t_train = time.time()
    _warm_start(mode, modes.WarmStart(model, optimizer, rows, held_rows, job_dir, hyper, spec.seed,
                                      lambda: group.any(stop.requested), group.loss_fn(model),
                                      resumable=group.world == 1), metrics)
    # the base's scores (PostPretrain's perplexity, its held-out answers) are not the run's scoring
    before = (evals.seconds if evals else 0.0) + answers.seconds_of(answer_set)
    run = _loop(job_dir, stop, model, optimizer, mode, rows, spec, total, evals, metric, group, answer_set)
    status, step, loss, eval_loss = run.status, run.step, run.loss, run.eval_loss
    scoring = ((evals.seconds if evals else 0.0) + answers.seconds_of(answer_set) - before
               + (metric.seconds if metric else 0.0) + run.save_seconds)
    train_seconds = time.time() - t_train - scoring
    metrics.update(
        steps=step,
        total_steps=total,
        trained_tokens=group.total(run.tokens),
        final_loss=round(loss, 6) if step else None,
        train_seconds=round(train_seconds, 3),
        seconds_per_step=round(train_seconds / step, 3) if step else None,
    )
    if evals is not None:
        metrics.update(eval_examples=evals.examples, eval_seconds=round(evals.seconds, 3),
                       final_eval_loss=None if eval_loss is None else round(eval_loss, 6),
                       **{k: round(v, 6) for k, v in run.scores.items() if k != "evalLoss"})
    if run.checkpoints:
        best = ckpt.best_checkpoint(run.checkpoints)
        over = ckpt.overfitting([(c["step"], c["evalLoss"]) for c in run.checkpoints if "evalLoss" in c])
        metrics.update(checkpoints=len(run.checkpoints), best_checkpoint=None if best is None else best["step"],
                       scoring_seconds=round(scoring, 3),
                       scoring_share=round(scoring / train_seconds, 4) if train_seconds > 0 else None,
                       overfitting=None if over is None else over.describe(),
                       **({"metric_seconds": round(metric.seconds, 3), "metric_items": metric.items}
                          if metric else {}))
    metrics.update(answers.summary(answer_set))
    if run.early_stopped:
        metrics.update(early_stopped_at=step, **({"stopped_by": run.stopped_by} if run.stopped_by else {}))
    if run.resume_points:
        metrics.update(resume_points=run.resume_points, resume_seconds=round(run.resume_seconds, 3))
    # no checkpoint judged (no held-out prompts): the final answers to a few training prompts are read instead
    final = (answers.held_prompts(held or examples, answers.FINAL_READ_PROMPTS)
             if answer_set is None and group.main and status == "Done" and step else [])
    unread = answers.AnswerSet(final, tok) if final else None  # (plain text has no prompts to answer)
    return status, answers.leave_adapter(job_dir, model, tok, run.checkpoints, run.collapse, metrics,
                                         learning_rate=hyper.learning_rate, steps=total,
                                         beta=hyper.beta if "beta" in row.hyper else None, unread=unread,
                                         unread_from="held-out" if held else "training")


def _warm_start(mode: modes.Mode, start: modes.WarmStart, metrics: dict[str, Any]) -> None:
    if taken := mode.warm_start(start):
        metrics["warm_start_steps"] = taken


def _answer_set(job_dir: Path, model: Any, tok: Any, held: list[Any], hyper: Any,
                with_metric: bool) -> answers.AnswerSet | None:
    """The held-out prompts each checkpoint answers (none without checkpoints), the base's answers taken; it
    scores the answers with ``evalMetric`` when ``with_metric`` (no :class:`MetricSet` does)."""
    prompts = answers.held_prompts(held, hyper.eval_metric_items) if hyper.checkpoints else []
    if not prompts:
        return None
    answer_set = answers.AnswerSet(prompts, tok, hyper.eval_metric if with_metric else None)
    _phase(job_dir, f"the base answers {len(prompts)} held-out prompts")
    answer_set.answer_base(model)
    return answer_set


@dataclass
class _Run:
    """Where the training loop ended: its status, steps, last losses and the tokens trained on."""

    status: str = "Done"
    step: int = 0
    loss: float = float("nan")
    eval_loss: float | None = None
    scores: dict[str, float] = field(default_factory=dict)  # the last held-out scores (evalLoss and the mode's)
    tokens: int = 0  # prompt + answer tokens of every row trained on (no padding)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # checkpointList entries
    recent: list[float] = field(default_factory=list)  # training losses since the last checkpoint
    save_seconds: float = 0.0
    early_stopped: bool = False
    collapse: dict[str, Any] | None = None  # where the held-out answers collapsed (checkpoints.collapse)
    stopped_by: str | None = None  # a mode's own early stop (a preference run's ``marginStop``), in words
    resume_seconds: float = 0.0  # spent writing resume points
    resume_points: int = 0

    def restore(self, state: dict[str, Any]) -> None:
        """Go on from a resume point's state (written by :meth:`state`)."""
        self.step, self.tokens, self.loss = int(state["step"]), int(state["tokens"]), float(state["loss"])
        self.checkpoints, self.recent = list(state["checkpoints"]), list(state["recent"])

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "tokens": self.tokens, "loss": self.loss, "checkpoints": self.checkpoints,
                "recent": self.recent}


def _loop(job_dir: Path, stop: _StopFlag, model: Any, optimizer: Any, mode: modes.Mode, rows: list[Any],
          spec: Any, total: int, evals: modes.Scorer | None, metric: MetricSet | None = None,
          group: distributed.Group | None = None, answer_set: answers.AnswerSet | None = None) -> _Run:
    """The training steps: one ``progress.jsonl`` line per logged step, and one with the held-out
    split's ``eval_loss`` (and the mode's held-out scores) every :func:`~qfnb.local.training.evaluate.every`
    steps and at the last (with checkpoints: at each checkpoint, which gets a ``checkpoint`` line of its
    own). In a group, every step is taken by all its workers together (a stop on one stops all; rank 0's
    checkpoints decide an early stop)."""
    hyper = spec.hyper
    group = group or distributed.Group()
    loss_fn = group.loss_fn(model, mode.loss)
    run = _Run()
    saves = set(ckpt.checkpoint_steps(total, hyper.checkpoints))
    eval_every = every(total, hyper.logging_steps)
    # none in a group: its job starts all its workers again together
    points = resume.Points(job_dir, model, optimizer, group.world == 1)
    with open(job_dir / "progress.jsonl", "a", encoding="utf-8") as progress:
        points.restore(run, lambda line: _line(progress, line), total)
        # the same seeded order, less the batches trained before a resume point
        for epoch, idx in itertools.islice(data.batches(len(rows), hyper.batch_size, spec.seed), run.step, None):
            if run.step >= total:
                break
            if group.any(stop.requested):
                run.status = "Stopped"
                points.save(run, run.step > 0)
                break
            batch = mode.batch(model, [rows[i] for i in idx])
            run.loss = loss = group.mean(lora.train_step(model, optimizer, batch, loss_fn=loss_fn))
            run.step += 1
            run.recent.append(loss)
            run.tokens += sum(mode.tokens(rows[i]) for i in idx)
            _finite(loss, run.step)
            line: dict[str, Any] = {"step": run.step, "total_steps": total, "epoch": epoch}
            if run.step % hyper.logging_steps == 0 or run.step == total:
                _line(progress, {**line, "loss": round(loss, 6),
                                 **{k: round(v, 6) for k, v in mode.stats.items()}})
            if run.step in saves:
                if group.main:
                    _checkpoint(job_dir, progress, model, run, line, evals, metric, answer_set)
                if _stops_here(run, hyper, group):
                    break
            if _mode_stopped(mode, group, run):  # a preference run's marginStop: its adapter is the run's
                break
            points.save(run, run.step < total and (run.step in saves or points.due()))
            if (evals is not None and not saves and (run.step % eval_every == 0 or run.step == total)
                  and not stop.requested):
                _line(progress, {**line, **_held_out(run, evals, model)})
    return run


def _stops_here(run: _Run, hyper: Any, group: distributed.Group) -> bool:
    """After a checkpoint: does the run end here? When its answers collapsed, or (``earlyStop``) when
    ``earlyStopPatience`` checkpoints brought no improvement (rank 0's checkpoints decide for a group)."""
    if group.from_main(run.collapse is not None):
        return True
    if hyper.early_stop and group.from_main(ckpt.patience_spent(run.checkpoints, hyper.early_stop_patience)):
        log.info("early stop at step %d: %d checkpoints without improvement", run.step, hyper.early_stop_patience)
        run.early_stopped = True
        return True
    return False


def _finite(loss: float, step: int) -> None:
    if loss != loss or loss in (float("inf"), float("-inf")):
        raise FloatingPointError(f"loss is {loss} at step {step}; lower learningRate")


def _mode_stopped(mode: modes.Mode, group: distributed.Group, run: _Run) -> bool:
    """Whether the mode asks to end the run now (a preference run's ``marginStop``; rank 0's word in a group)."""
    reason = mode.stop_reason
    if not group.from_main(reason is not None):
        return False
    run.stopped_by = reason or "the main worker's marginStop"
    run.early_stopped = True
    log.info("early stop at step %d: %s", run.step, run.stopped_by)
    return True


def _held_out(run: _Run, evals: modes.Scorer, model: Any) -> dict[str, Any]:
    """Score the held-out split now: the progress line's fields (``eval_loss`` and the mode's scores)."""
    run.scores = evals.score(model)
    run.eval_loss = run.scores["evalLoss"]
    return {"eval_loss": round(run.eval_loss, 6),
            **{k: round(v, 6) for k, v in run.scores.items() if k != "evalLoss"}}


def _checkpoint(job_dir: Path, progress: Any, model: Any, run: _Run, line: dict[str, Any],
                evals: modes.Scorer | None, metric: MetricSet | None,
                answer_set: answers.AnswerSet | None = None) -> None:
    """Score the model on the held-out split, save its adapter as ``checkpoints/step-N`` and report both."""
    entry: dict[str, Any] = {"step": run.step, "trainLoss": round(sum(run.recent) / len(run.recent), 6)}
    run.recent = []
    if evals is not None:
        scored = _held_out(run, evals, model)
        entry.update({"evalLoss": scored.pop("eval_loss"), **scored})
        _line(progress, {**line, "eval_loss": entry["evalLoss"], **scored})
    if metric is not None:
        entry.update(metric=round(metric.score(model), 6), metricName=metric.name)
    if answer_set is not None:
        entry.update(answer_set.score(model))
    t0 = time.time()
    path = job_dir / "checkpoints" / f"step-{run.step}"
    model.save_pretrained(str(path))
    run.save_seconds += time.time() - t0
    entry["path"] = str(path)
    run.checkpoints.append(entry)
    _line(progress, {**line, "checkpoint": entry})
    run.collapse = ckpt.collapse(run.checkpoints)
    if run.collapse is not None:
        log.warning("held-out answers collapsed at step %d: %s", run.step, run.collapse["seen"])
        _line(progress, {**line, "collapse": run.collapse})


def _line(progress: Any, line: dict[str, Any]) -> None:
    progress.write(json.dumps({**line, "time": time.time()}) + "\n")
    progress.flush()


def _phase(job_dir: Path, phase: str, total: int = 0) -> None:
    """A ``progress.jsonl`` line without a loss: what the worker is doing before step 1."""
    progress_note(job_dir, {"step": 0, "total_steps": total, "phase": phase})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m qfnb.local.training.process.worker <job_dir>\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    result = run(Path(argv[0]), stop)
    return 0 if result["status"] in ("Done", "Stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
