"""A fast stand-in for ``qfnb.local.training.process.worker`` (Contract 4) used by unit tests.

Steps are paced by ``hyper.stepSeconds`` (default 0.05 s); ``hyper.failAt`` makes it fail. With an
``eval_file`` (a validation split) it reports an ``eval_loss`` every other step and at the last. With
``hyper.checkpoints`` K it saves K adapter dirs evenly and reports ``checkpoint`` lines whose held-out
losses are ``hyper.fakeEvalLosses`` (one per checkpoint) when given. ``hyper.fakeResume`` makes it keep
a resume point's ``resume/state.json`` at each step (it starts at step 1 all the same), at
``hyper.fakeResumeAt`` when given (a worker that dies at one point again and again).

A RFT spec (``train_mode`` RFT) runs :func:`rft`: no model, but the real reward exchange
(:class:`qfnb.local.training.rewards.RewardExchange`): each step's completions are ``"<prompt> #k"``
for k in ``0..groupSize-1``, scored by the client or the grader as the real worker has them scored,
and its errors end the run as the real worker's do.
"""

import json
import signal
import sys
import time
from pathlib import Path

job = Path(sys.argv[1])
spec = json.loads((job / "spec.json").read_text())
hyper = spec["hyper"]
rows = [json.loads(line) for line in Path(spec["train_file"]).read_text().splitlines() if line.strip()]
total = int(hyper.get("maxSteps") or max(1, len(rows) * hyper["epoch"] // hyper["batchSize"]))
stopped = False


def _stop(*_):
    global stopped
    stopped = True


signal.signal(signal.SIGTERM, _stop)
start = time.time()


def rft():
    from qfnb.local.training.rewards import RewardError, RewardExchange, RewardSample, RewardsStopped
    from qfnb.protocol.console import train_formats
    from qfnb.protocol.console.rewards import moving_mean, parse_reward

    prompts = [(item.messages[-1]["content"], dict(item.extra))
               for item in train_formats.parse_file("RFT", Path(spec["train_file"]))]

    exchange = RewardExchange(job, parse_reward(spec.get("reward")), lambda: stopped)
    group, batch, means = int(hyper.get("groupSize") or 4), int(hyper["batchSize"]), []
    metrics = {"sampled_tokens": 0}
    status, error = "Done", None
    with open(job / "progress.jsonl", "a") as fh:
        try:
            for step in range(1, total + 1):
                if stopped:
                    status = "Stopped"
                    break
                time.sleep(float(hyper.get("stepSeconds", 0.05)))
                picked = [prompts[(step * batch + i) % len(prompts)] for i in range(batch)]
                samples = [RewardSample(text, f"{text} #{k}", fields) for text, fields in picked for k in range(group)]
                rewards = exchange.score(samples, step=step)
                metrics["sampled_tokens"] += len(samples) * 3
                means.append(sum(rewards) / len(rewards))
                fh.write(json.dumps({"step": step, "total_steps": total, "epoch": 1, "loss": 0.1,
                                     "reward": means[-1], "reward_mean": moving_mean(means), "time": time.time()})
                         + "\n")
                fh.flush()
        except RewardsStopped:
            status = "Stopped"
        except RewardError as exc:
            status, error = "Failed", f"RewardError: {exc}"
    metrics.update(steps=len(means), trained_tokens=10 * len(means), rewards=means)
    (job / "result.json").write_text(json.dumps({"status": status, "metrics": metrics,
                                                 "adapter_dir": str(job / "adapter"), "error": error}))
    sys.exit(0)


if spec.get("train_mode") == "RFT":
    rft()
count = int(hyper.get("checkpoints") or 0)
saves = sorted({max(1, round(total * i / count)) for i in range(1, count + 1)}) if count else []
fake_losses = list(hyper.get("fakeEvalLosses") or [])


def finish(status, error=None):
    metrics = {"steps": total, "trained_tokens": 10 * total}
    (job / "result.json").write_text(json.dumps({"status": status, "metrics": metrics,
                                                 "adapter_dir": str(job / "adapter"), "error": error}))
    sys.exit(0)


with open(job / "progress.jsonl", "a") as fh:
    for step in range(1, total + 1):
        if stopped:
            finish("Stopped")
        if hyper.get("failAt") == step:
            finish("Failed", "simulated failure")
        time.sleep(float(hyper.get("stepSeconds", 0.05)))
        fh.write(json.dumps({"step": step, "total_steps": total, "loss": 5.0 / step, "epoch": 1,
                             "time": round(time.time() - start, 3)}) + "\n")
        if step in saves:
            ckpt = job / "checkpoints" / f"step-{step}"
            ckpt.mkdir(parents=True, exist_ok=True)
            (ckpt / "adapter_config.json").write_text(json.dumps({"base_model": spec["base_model"], "step": step}))
            (ckpt / "adapter_model.safetensors").write_bytes(b"weights at step %d" % step)
            held = fake_losses[saves.index(step)] if fake_losses else 1.0 + 5.0 / (step + 1)
            fh.write(json.dumps({"step": step, "total_steps": total, "eval_loss": held, "epoch": 1,
                                 "time": round(time.time() - start, 3)}) + "\n")
            fh.write(json.dumps({"step": step, "total_steps": total, "epoch": 1, "time": round(time.time() - start, 3),
                                 "checkpoint": {"step": step, "trainLoss": 5.0 / step, "evalLoss": held,
                                                "path": str(ckpt)}}) + "\n")
        if hyper.get("fakeResume"):
            (job / "resume").mkdir(exist_ok=True)
            (job / "resume" / "state.json").write_text(json.dumps({"step": hyper.get("fakeResumeAt") or step}))
        elif spec.get("eval_file") and (step % 2 == 0 or step == total):
            fh.write(json.dumps({"step": step, "total_steps": total, "eval_loss": 1.0 + 5.0 / (step + 1),
                                 "epoch": 1, "time": round(time.time() - start, 3)}) + "\n")
        fh.flush()
(job / "adapter").mkdir(exist_ok=True)
(job / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model": spec["base_model"]}))
finish("Done")
