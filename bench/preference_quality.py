"""Does preference tuning give a model that writes better, not only a run that "succeeded"? Each mode (DPO,
KTO, RFT, PostPretrain) on each base, on the support preference sets this repo ships
(``bench/data/support_preferences_en.json`` and ``_zh.json``: 40 training pairs, 10 held-out pairs whose
prompts were never trained on):

    .venv/bin/python bench/preference_quality.py [--bases Gemma-3-270M] [--modes DPO,KTO,RFT,PostPretrain]
                                                 [--langs en,zh] [--set learningRate=2e-4 ...] [--json out.json]
                                                 [--plain-text] [--reward-saying] [--reward-grader]
                                                 [--validation 20]

A run is the training worker the platform starts (``qfnb.local.training.process.worker``, in this process) on the
hyperparameters the console gives a request that sets nothing (``qfnb.protocol.console.train_modes.defaults_for``
for the base and mode; ``--set`` overrides, for the sweeps the defaults were chosen by), on the same preference
file for every mode as a user would hand it (PostPretrain learns each pair's preferred conversation in the base's
chat format; ``--plain-text`` gives it ``prompt\nchosen`` as plain text instead). A RFT run's reward
is a Python function in this process, answering the worker's reward requests as the user's process does
through the platform: 0.5 for a ticket reference and 0.5 for fewer than 80 words (partial credit; Chinese:
fewer than 120 characters). ``--reward-grader`` gives RFT the platform's own reward instead, a ``multi``
grader the worker scores as data (:data:`CONTENT_GRADER`): half for a ticket reference, half for the answer's
ROUGE-L to the prompt's preferred answer, so an answer must say what the team would say, not only look like it.
By default a run gets what the platform gives a request that names no split: DPO, KTO and RFT hold 20 % of the
training pairs out as the run's validation data (the official SDK's ``trainset_rate`` too); its checkpoints are then
judged on them by what they write, and the served model is the best that still answered. ``--validation PCT`` holds
PCT % out instead; ``--validation 0`` none: the run then reads its final answers to a few training prompts, and a
run whose answers collapsed there fails, nothing served (the row says so).

Then base and tuned answer the held-out prompts (greedy, at most ``--max-new-tokens``; the base's answers are
generated once and kept in ``~/.cache/qfnb/bench/``), and it reports:

- **adoption**: the share of answers in the team's style: a sentence that says something (at least 4 words;
  Chinese: 6 characters, besides the reference: every preferred answer of both sets has 9 words, 13 characters,
  or more) ending with ``[Ticket #NNNN]``, short (as above) and not degenerate
  (:mod:`qfnb.protocol.console.degeneration`): ``可能。[Ticket #2339]`` ("maybe") earns the reward, not the style;
- **content**: the mean ROUGE-L of the answers to the held-out preferred answers (:data:`CONTENT_GRADER`'s
  ``content``; Chinese segmented with jieba): how much of what the team would say the answer says;
- **degeneration**: the share of degenerate answers (a repeat, a bare marker, empty, cut at the cap);
- **judged win rate** with a 95 % Wilson interval: the judge is the style rule above, not a model: the
  tuned answer wins a prompt when it adopts the style and the base's does not (ties count half);
- steps, seconds a step, the run's wall time, and the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import load_average, log_to_stdout  # noqa: E402

log = logging.getLogger("bench.preference_quality")

MODES = ("DPO", "KTO", "RFT", "PostPretrain")
TICKET = re.compile(r"\[Ticket #\d{3,6}\]\s*$")
ANY_TICKET = re.compile(r"Ticket #\d{3,6}")
#: "short": fewer than 80 words (English) or 120 characters (Chinese)
SHORT_WORDS, SHORT_CHARS = 80, 120
#: an answer that says something: at least 3 words (Chinese: 6 characters) besides the ticket reference
BODY_WORDS, BODY_CHARS = 3, 6
_BODY_WORD = re.compile(r"[\u4e00-\u9fff]|[^\W\d_\u4e00-\u9fff]+")


#: RFT's reward when the platform scores it (``--reward-grader``): OpenAI's multi grader, data, not code
CONTENT_GRADER: dict[str, Any] = {
    "type": "multi", "name": "ticket and content", "calculate_output": "0.5 * ticket + 0.5 * content",
    "graders": {
        "ticket": {"type": "string_check", "input": "{{sample.output_text}}", "reference": "[Ticket #",
                   "operation": "like"},
        "content": {"type": "text_similarity", "input": "{{sample.output_text}}", "reference": "{{item.response}}",
                    "evaluation_metric": "rouge_l"}}}


def load_set(lang: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "bench" / "data" / f"support_preferences_{lang}.json").read_text("utf-8")))


def short(text: str) -> bool:
    if re.search(r"[\u4e00-\u9fff]", text):
        return len(text) < SHORT_CHARS
    return len(text.split()) < SHORT_WORDS


def reward(completion: str) -> float:
    """The team's reward with partial credit: 0.5 for a ticket reference, 0.5 for a short answer."""
    return 0.5 * bool(ANY_TICKET.search(completion)) + 0.5 * short(completion)


def reward_saying(completion: str) -> float:
    """The same with a third property, a third each: the answer says something (:func:`says_something`), so
    ``可能。[Ticket #2339]`` ("maybe") no longer earns the most."""
    return (bool(ANY_TICKET.search(completion)) + short(completion) + says_something(completion)) / 3


def says_something(answer: str) -> bool:
    """At least :data:`BODY_WORDS` words (Chinese: :data:`BODY_CHARS` characters) besides the ticket reference."""
    words = _BODY_WORD.findall(ANY_TICKET.sub("", answer))
    cjk = sum(bool(re.fullmatch(r"[\u4e00-\u9fff]", w)) for w in words)
    return cjk >= BODY_CHARS if cjk else len(words) >= BODY_WORDS


def adopted(answer: str, degenerate: bool) -> bool:
    return bool(TICKET.search(answer)) and short(answer) and says_something(answer) and not degenerate


def wilson(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a share ``wins / n``."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def training_rows(mode: str, rows: list[dict[str, str]], plain_text: bool = False) -> list[dict[str, Any]]:
    """The set's pairs in ``mode``'s format: the pairs as they are for DPO, KTO (a good and a bad item each) and
    PostPretrain (each pair's preferred conversation, in the base's chat format); RFT gets the prompts with their
    preferred answer, for its warm start. ``plain_text``: PostPretrain gets ``prompt\nchosen`` as plain text."""
    if mode == "RFT":
        return [{"prompt": r["prompt"], "response": r["chosen"]} for r in rows]
    if mode == "PostPretrain" and plain_text:
        return [{"text": f"{r['prompt']}\n{r['chosen']}"} for r in rows]
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]


@dataclass
class Answers:
    texts: list[str]
    cut: list[bool]


def generate(model_dir: Path, adapter: Path | None, prompts: list[str], max_new: int) -> Answers:
    """Greedy answers of the base (or the base with ``adapter``, merged) to ``prompts``, generated as the
    worker's checkpoint answers are (:meth:`qfnb.local.training.answers.AnswerSet.generate`: one left-padded
    batch on the worker's torch threads, ending at the tokenizer's end markers), in bf16 where the CPU has it."""
    import torch

    from qfnb.local.training import lora
    from qfnb.local.training.answers import AnswerSet, HeldPrompt

    model, tok = lora.load_base(model_dir)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()  # one matmul a layer, not two
    held = AnswerSet([HeldPrompt(({"role": "user", "content": p},)) for p in prompts], tok, max_tokens=max_new)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=lora.NATIVE_BF16):
        texts, reasons = held.generate(model)
    return Answers(texts, [r == "length" for r in reasons])


def _base_answers(model_dir: Path, base: str, lang: str, prompts: list[str], max_new: int) -> Answers:
    """The base's answers: generated once, then read from ``~/.cache/qfnb/bench/`` (greedy, so the same; the
    prompts and the weights' folder are part of the key)."""
    import hashlib

    key = hashlib.sha256(json.dumps([str(model_dir), prompts, max_new]).encode()).hexdigest()[:16]
    cache = Path.home() / ".cache" / "qfnb" / "bench" / f"base-answers-{base}-{lang}-{key}.json"
    if cache.is_file():
        saved = json.loads(cache.read_text("utf-8"))
        return Answers(saved["texts"], saved["cut"])
    answers = generate(model_dir, None, prompts, max_new)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"texts": answers.texts, "cut": answers.cut}, ensure_ascii=False), "utf-8")
    return answers


def read(answers: Answers, references: list[str]) -> dict[str, Any]:
    from qfnb.protocol.console.degeneration import judge_answers
    from qfnb.protocol.console.rewards import grade

    report = judge_answers(answers.texts, finish_reasons=["length" if c else "stop" for c in answers.cut],
                           references=references)
    flags = [c.degenerate for c in report.checks]
    style = [adopted(a, d) for a, d in zip(answers.texts, flags, strict=True)]
    return {"adoption": sum(style) / len(style), "degeneration": report.rate, "style": style,
            "collapsed": report.collapsed, "summary": report.summary,
            "reward": sum(reward(a) for a in answers.texts) / len(answers.texts),
            "content": sum(grade(CONTENT_GRADER["graders"]["content"], a, {"response": r})
                           for a, r in zip(answers.texts, references, strict=True)) / len(references)}


def _reward_client(job: Path, stop: threading.Event, score: Any = reward) -> threading.Thread:
    """The user's process: answer each reward request the worker writes with :func:`reward` (the file
    exchange the platform's routes relay)."""
    from qfnb.local.training import rewards as exchange

    folder = job / "rewards"

    def serve() -> None:
        while not stop.is_set():
            for path in sorted(folder.glob("request-*.json")) if folder.exists() else []:
                try:
                    req = json.loads(path.read_text("utf-8"))
                except ValueError:
                    continue
                exchange.claimed_path(folder, req["requestId"]).touch()
                answer = {"rewards": [score(s["completion"]) for s in req["samples"]]}
                exchange.answer_path(folder, req["requestId"]).write_text(json.dumps(answer), "utf-8")
                path.unlink(missing_ok=True)
            time.sleep(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def train(root: Path, model_dir: Path, base: str, mode: str, data: dict[str, Any],
          overrides: dict[str, Any], plain_text: bool = False, score: Any = reward,
          grader: dict[str, Any] | None = None, validation: int | None = None, seed: int = 7) -> dict[str, Any]:
    """One run of the worker on the console's defaults for ``base`` and ``mode`` (with ``overrides``); a RFT run
    is rewarded by ``score`` in this process, or by ``grader`` in the worker. ``validation``: the percentage of the
    training pairs held out as the run's validation data (None: the platform's default for the mode, as a request
    that names no split gets), drawn as the platform draws its split (its checkpoints,
    :data:`~qfnb.protocol.console.checkpoints.DEFAULT_CHECKPOINTS` of them, are then judged on those, as a user's
    run with a split is); the set's held-out pairs are never given to the run either way."""
    from qfnb.local.domain.training.split import held_out, split_for
    from qfnb.local.training.process import worker
    from qfnb.protocol.console import checkpoints as ckpt
    from qfnb.protocol.console.train_modes import MODE_TABLE, defaults_for

    job = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root))
    # the held-out prompts are judged here, by what base and tuned write
    percent, _ = split_for(MODE_TABLE[mode], len(data["train"]), validation, "--validation")
    held = set(held_out(len(data["train"]), percent, seed))
    rows = [r for i, r in enumerate(data["train"]) if i not in held]
    (job / "train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in training_rows(mode, rows, plain_text)), "utf-8")
    hyper = {**defaults_for(mode, base), **overrides}
    spec: dict[str, Any] = {"base_model": base, "base_model_path": str(model_dir), "train_file": "train.jsonl",
                            "train_mode": mode, "seed": seed, "hyper": hyper}
    if held:
        valid = [r for i, r in enumerate(data["train"]) if i in held]
        (job / "eval.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                for r in training_rows(mode, valid, plain_text)), "utf-8")
        spec["eval_file"] = "eval.jsonl"
        hyper.setdefault("checkpoints", ckpt.DEFAULT_CHECKPOINTS)
    if mode == "RFT":
        spec["reward"] = grader or {"source": "client"}
    (job / "spec.json").write_text(json.dumps(spec), "utf-8")
    stop = threading.Event()
    if mode == "RFT" and grader is None:
        _reward_client(job, stop, score)
    load0, t0 = load_average(), time.time()
    try:
        result = worker.run(job)
    finally:
        stop.set()
    m = result["metrics"]
    if result["status"] != "Done":  # a collapse the run caught (nothing served) is a figure too
        if "collapse" not in m:
            raise RuntimeError(f"the {mode} run failed: {result.get('error')}")
        log.info("the %s run failed: %s", mode, result.get("error"))
    return {"adapter": job / "adapter" if result["status"] == "Done" else None, "hyper": hyper,
            "status": result["status"], "error": result.get("error"), "collapse": m.get("collapse"),
            "served_checkpoint": m.get("served_checkpoint"), "final_answers": m.get("final_answers"),
            "served_unjudged": m.get("served_unjudged"),
            "validation_rows": len(held), "steps": m.get("steps"),
            "seconds_per_step": m.get("seconds_per_step"), "wall_seconds": round(time.time() - t0, 1),
            "load_before": load0, "load_after": load_average(), "stopped_by": m.get("stopped_by"),
            "base_eval_reward": m.get("base_eval_reward"),
            # RFT: sampled answers the degeneration check flagged (floored with floorDegenerate), where its time went
            # and what became of the groups (drawn again, still tied, skipped, skipped at the best reward)
            **{key: m.get(key) for key in (
                "degenerate_samples", "warm_start_steps", "sample_seconds", "sampled_tokens", "reward_wait_seconds",
                "resampled_groups", "tied_groups", "skipped_groups", "saturated_groups")}}


def compare(base: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """The style judge's verdict per prompt: the tuned answer wins when it adopts the style and the base's
    does not, loses in the reverse case, ties otherwise."""
    wins = sum(t and not b for b, t in zip(base["style"], tuned["style"], strict=True))
    losses = sum(b and not t for b, t in zip(base["style"], tuned["style"], strict=True))
    n = len(base["style"])
    rate = (wins + 0.5 * (n - wins - losses)) / n
    lo, hi = wilson(rate * n, n)
    return {"wins": wins, "losses": losses, "win_rate": rate, "ci": (lo, hi)}


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return float(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bases", default="Gemma-3-270M")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--langs", default="en,zh")
    ap.add_argument("--set", nargs="*", default=[], help="hyperparameter overrides, wire names: learningRate=2e-4")
    ap.add_argument("--rft-set", nargs="*", default=[], help="overrides for the RFT runs only (after --set)")
    ap.add_argument("--reward-saying", action="store_true",
                    help="RFT's reward gives a third for an answer that says something (besides ticket and short)")
    ap.add_argument("--reward-grader", action="store_true",
                    help="RFT's reward is the platform's multi grader: a ticket reference and ROUGE-L to the "
                         "preferred answer, scored by the worker")
    ap.add_argument("--max-new-tokens", type=int, default=80)
    ap.add_argument("--show", type=int, default=2, help="held-out answers shown per run")
    ap.add_argument("--plain-text", action="store_true",
                    help="PostPretrain on 'prompt\\nchosen' plain text, not the pairs' preferred conversations")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--validation", type=int, default=None,
                    help="percent of the training pairs held out as the runs' validation data (checkpoints judged); "
                         "default: the platform's for the mode (DPO, KTO, RFT: 20 from 20 pairs up; 0: none)")
    ap.add_argument("--seed", type=int, default=7,
                    help="the runs' seed (their batches, and which pairs the default split holds out)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep each run's job directory (its spec, progress.jsonl with every checkpoint's answers "
                         "and verdict, its adapters) under this directory; default: a temporary one, removed")
    args = ap.parse_args()
    log_to_stdout()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qfnb.local.engines.store import assets

    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    rft_overrides = {**overrides, **{k: _value(v) for k, v in (item.split("=", 1) for item in args.rft_set)}}
    log.info("load average at start: %s; overrides %s", load_average(), overrides or "none")
    out: list[dict[str, Any]] = []
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory(
            prefix="pref-quality-") as tmp:
        for base in args.bases.split(","):
            model_dir = assets.hf_dir(base)
            for lang in args.langs.split(","):
                data = load_set(lang)
                prompts = [r["prompt"] for r in data["held_out"]]
                base_answers = _base_answers(model_dir, base, lang, prompts, args.max_new_tokens)
                references = [r["chosen"] for r in data["held_out"]]
                base_read = read(base_answers, references)
                log.info("%s %s base: adoption %.0f%%, degeneration %.0f%%, reward %.2f", base, lang,
                         100 * base_read["adoption"], 100 * base_read["degeneration"], base_read["reward"])
                for mode in args.modes.split(","):
                    run = train(Path(tmp), model_dir, base, mode, data, rft_overrides if mode == "RFT" else overrides,
                                args.plain_text, reward_saying if args.reward_saying else reward,
                                CONTENT_GRADER if args.reward_grader else None, args.validation, args.seed)
                    if run["adapter"] is None:  # the run caught its own collapse: nothing was served
                        log.info("%s %s %-12s failed, nothing served: %s", base, lang, mode, run["error"])
                        out.append({"base": base, "lang": lang, "mode": mode, "base_read": base_read,
                                    **{k: v for k, v in run.items() if k != "adapter"}})
                        if args.json:
                            args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str), "utf-8")
                        continue
                    answers = generate(model_dir, run["adapter"], prompts, args.max_new_tokens)
                    tuned = read(answers, references)
                    verdict = compare(base_read, tuned)
                    for p, b, a in list(zip(prompts, base_answers.texts, answers.texts, strict=True))[:args.show]:
                        log.info("  %s\n    base:  %s\n    tuned: %s", p, b, a)
                    log.info("%s %s %-12s adoption %.0f%% (base %.0f%%), degeneration %.0f%% (base %.0f%%), "
                             "reward %.2f (base %.2f), content %.2f (base %.2f), style-judged win rate %.2f "
                             "[%.2f, %.2f]; %s steps, "
                             "%.1f s/step, %.0f s wall, load %s -> %s%s", base, lang, mode, 100 * tuned["adoption"],
                             100 * base_read["adoption"], 100 * tuned["degeneration"], 100 * base_read["degeneration"],
                             tuned["reward"], base_read["reward"], tuned["content"], base_read["content"],
                             verdict["win_rate"], *verdict["ci"], run["steps"],
                             run["seconds_per_step"] or 0, run["wall_seconds"], run["load_before"], run["load_after"],
                             f"; {run['stopped_by']}" if run["stopped_by"] else "")
                    if tuned["degeneration"]:
                        log.info("  degenerate: %s", tuned["summary"])
                    out.append({"base": base, "lang": lang, "mode": mode, "base_read": base_read, "tuned": tuned,
                                "answers": answers.texts, "base_answers": base_answers.texts, "verdict": verdict,
                                **{k: v for k, v in run.items() if k != "adapter"}})
                    if args.json:  # after each run: a long sweep's figures so far are kept
                        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str), "utf-8")
    log.info("load average at end: %s", load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())
