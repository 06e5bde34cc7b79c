"""A checkpoint judged by what it writes: greedy answers to a few held-out prompts, read for degeneration beside
the base's answers to the same prompts.

The base answers once, before step 1 (the adapter disabled: peft's ``disable_adapter()``); each checkpoint then
answers the same prompts, all of them in one batched, left-padded greedy generation with the model in eval mode (on
the worker's torch threads), at most :attr:`AnswerSet.max_tokens` new tokens (a little more than twice
the longest reference answer, never more than :data:`ANSWER_TOKENS`: a reply that runs to the cap never ended,
``finish_reason`` ``"length"``).
:mod:`qfnb.protocol.console.degeneration` reads them and :func:`qfnb.protocol.console.checkpoints.judge_checkpoint`
gives the verdict. With a generation metric named (``evalMetric``), the same answers are scored against the
references (a preference run's preferred answers). The time spent is :attr:`AnswerSet.seconds` (the base's
apart: :attr:`AnswerSet.base_seconds`), the run's scoring time.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb.local.training import lora
from qfnb.local.training.data import Example, end_token_ids
from qfnb.local.training.spec import progress_note
from qfnb.protocol.console import checkpoints as ckpt
from qfnb.protocol.console import textmetrics
from qfnb.protocol.console.degeneration import AnswersReport, judge_answers
from qfnb.protocol.console.train_formats import Conversation, Judged, Pair, PromptItem

log = logging.getLogger("qfnb.local.training")

#: the most new tokens a held-out answer may have
ANSWER_TOKENS = 64
#: answers (prompt, the base's, the checkpoint's) a checkpoint entry keeps, and the characters kept of each text
SAMPLES, SAMPLE_CHARS = 3, 240
#: the training prompts a run that judged no checkpoint reads its final answers on (:func:`leave_adapter`)
FINAL_READ_PROMPTS = 8


@contextlib.contextmanager
def generating(model: Any, tok: Any) -> Iterator[None]:
    """One batched ``generate``'s settings: the model in eval mode without gradients, the tokenizer padding on the
    left (prompts of different lengths end where the answers start; the attention mask hides the padding); the
    padding side and training mode are put back after.

    It runs on the worker's torch threads (:data:`~qfnb.local.training.lora.N_THREADS`). Decoding a batch reads
    every weight once a token, and one thread of this 2-core CPU reads them at a third of two's pace (Gemma's
    262k x 640 head: 243 ms on one, 70 ms on two, idle); a draw of 16 rows x 48 tokens took 39-68 s on one and
    25 s on two. The head decodes from a bf16 copy where the CPU multiplies bf16 natively (:func:`lora.bf16_head`)."""
    import torch

    was_training, side = model.training, tok.padding_side
    model.eval()
    tok.padding_side = "left"
    try:
        with torch.no_grad(), lora.bf16_head(model):
            yield
    finally:
        tok.padding_side = side
        if was_training:
            model.train()


@dataclass(frozen=True)
class HeldPrompt:
    """A held-out prompt: the conversation up to the answer, and a good answer to it when the data has one."""

    messages: tuple[dict[str, str], ...]
    reference: str | None = None


def held_prompts(records: Sequence[Any], limit: int) -> list[HeldPrompt]:
    """Up to ``limit`` distinct held-out prompts of a mode's records: SFT examples (their answer the reference),
    DPO pairs (the preferred answer), KTO items (a good answer, when one is labelled so), RFT prompts (a
    ``reference`` field, when given), PostPretrain conversations (their answer). Plain text has no prompt: none."""
    out: dict[tuple[tuple[tuple[str, str], ...], ...], HeldPrompt] = {}
    for r in records:
        found = _prompt_of(r)
        if found is None or not found[0]:
            continue
        messages, reference = found
        key = tuple(tuple(sorted(m.items())) for m in messages)
        known = out.get(key)
        if known is None:
            if len(out) >= limit:
                continue
            out[key] = HeldPrompt(tuple(dict(m) for m in messages), reference)
        elif known.reference is None and reference is not None:
            out[key] = HeldPrompt(known.messages, reference)
    return list(out.values())


def _prompt_of(record: Any) -> tuple[tuple[dict[str, str], ...], str | None] | None:
    """A record's conversation up to its answer and its good answer (None: unknown), by the record's type;
    None for a record with no prompt (plain text)."""
    if isinstance(record, Pair):
        return record.messages, record.chosen
    if isinstance(record, Conversation):
        return record.messages[:-1], record.messages[-1]["content"]
    if isinstance(record, Judged):
        return record.messages, record.answer if record.desirable else None
    if isinstance(record, Example):
        return record.messages, record.answer
    if isinstance(record, PromptItem):
        reference = record.extra.get("reference")
        return record.messages, reference if isinstance(reference, str) and reference.strip() else None
    return None


class AnswerSet:
    """The held-out prompts a run's checkpoints answer, and the base's answers to them."""

    def __init__(self, prompts: Sequence[HeldPrompt], tokenizer: Any, metric: str | None = None,
                 max_tokens: int | None = None) -> None:
        self.tok, self.metric = tokenizer, metric
        self.prompts = list(prompts)
        self.texts = [tokenizer.apply_chat_template(list(p.messages), tokenize=False, add_generation_prompt=True)
                      for p in self.prompts]
        refs = [p.reference for p in self.prompts if p.reference]
        longest = max((len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in refs), default=ANSWER_TOKENS)
        self.max_tokens = max_tokens or min(ANSWER_TOKENS, 2 * longest + 8)
        self.end = end_token_ids(tokenizer)
        self.base: list[str] | None = None
        self.base_report: AnswersReport | None = None
        self.seconds = 0.0  # generating, so far (the base's answers included)
        self.base_seconds = 0.0

    def generate(self, model: Any) -> tuple[list[str], list[str | None]]:
        """Greedy answers to every prompt in one left-padded batch, and each one's finish reason (``"length"``
        when it ran to the cap), the model in eval mode for the call."""
        t0 = time.time()
        try:
            with generating(model, self.tok):
                batch = self.tok(self.texts, add_special_tokens=False, padding=True, return_tensors="pt")
                out = model.generate(**batch, max_new_tokens=self.max_tokens, do_sample=False, eos_token_id=self.end,
                                     pad_token_id=self.tok.pad_token_id, use_cache=True)
        finally:
            self.seconds += time.time() - t0
        answers, reasons = [], []
        for row in out[:, batch["input_ids"].shape[1]:].tolist():
            cut = next((i for i, t in enumerate(row) if t in self.end), None)
            answers.append(str(self.tok.decode(row if cut is None else row[:cut], skip_special_tokens=True)).strip())
            reasons.append("length" if cut is None and len(row) >= self.max_tokens else None)
        return answers, reasons

    def judge(self, answers: Sequence[str], reasons: Sequence[str | None]) -> AnswersReport:
        return judge_answers(answers, finish_reasons=reasons, references=[p.reference for p in self.prompts])

    def answer_base(self, model: Any) -> None:
        """The base's answers (the adapter disabled), once, before step 1."""
        before = self.seconds
        with model.disable_adapter():
            answers, reasons = self.generate(model)
        self.base_seconds = self.seconds - before
        self.base, self.base_report = answers, self.judge(answers, reasons)
        log.info("the base's held-out answers: %s", self.base_report.summary)

    def score(self, model: Any) -> dict[str, Any]:
        """A checkpoint's entry fields: :data:`~qfnb.protocol.console.checkpoints.DEGENERATION_RATE`,
        :data:`~qfnb.protocol.console.checkpoints.DEGENERATE`, ``degeneration`` (what was seen), a few
        ``answers`` beside the base's, and the metric of the answers when one is named."""
        return self.entry(*self.generate(model))

    def entry(self, answers: Sequence[str], reasons: Sequence[str | None],
              report: AnswersReport | None = None) -> dict[str, Any]:
        """:meth:`score`'s fields for answers already generated (a RFT checkpoint's, also rewarded; ``report``:
        their :meth:`judge`, when the caller has it)."""
        report = report if report is not None else self.judge(answers, reasons)
        entry: dict[str, Any] = {ckpt.DEGENERATION_RATE: round(report.rate, 4),
                                 **ckpt.judge_checkpoint(report, self.base_report).fields(),
                                 "answers": self.samples(answers, report)}
        if self.metric is not None:
            scores = [textmetrics.exact_match(p.reference, a) if self.metric == "exact_match"
                      else textmetrics.rouge(p.reference, a)["rouge_l"]
                      for p, a in zip(self.prompts, answers, strict=True) if p.reference]
            if scores:
                entry.update(metric=round(sum(scores) / len(scores), 6), metricName=self.metric)
        return entry

    def samples(self, answers: Sequence[str], report: AnswersReport) -> list[dict[str, Any]]:
        """The first :data:`SAMPLES` answers beside the base's, each with why it is degenerate (``""``: it is
        not); the texts cut at :data:`SAMPLE_CHARS`."""
        out = []
        for i, (p, a, check) in enumerate(zip(self.prompts, answers, report.checks, strict=True)):
            if i >= SAMPLES:
                break
            reason = check.reason or ("the same answer as most prompts" if report.same_answer is not None else "")
            out.append({"prompt": str(p.messages[-1].get("content", ""))[:SAMPLE_CHARS],
                        "base": (self.base[i] if self.base is not None else "")[:SAMPLE_CHARS],
                        "answer": a[:SAMPLE_CHARS], "reason": reason})
        return out


def seconds_of(answer_set: AnswerSet | None) -> float:
    """The time ``answer_set`` spent generating (0 without one)."""
    return answer_set.seconds if answer_set is not None else 0.0


def summary(answer_set: AnswerSet | None) -> dict[str, Any]:
    """A run's ``metrics`` of its held-out answers: how many prompts, the time spent (the base's apart, which is
    not the run's scoring), the base's degeneration rate (none without an answer set)."""
    if answer_set is None:
        return {}
    return {"answer_prompts": len(answer_set.prompts), "answer_seconds": round(answer_set.seconds, 3),
            "base_answer_seconds": round(answer_set.base_seconds, 3),
            "base_degeneration_rate": None if answer_set.base_report is None
            else round(answer_set.base_report.rate, 4)}


class AnswersCollapsed(RuntimeError):
    """Every checkpoint's held-out answers degenerated: the run has no adapter worth serving."""


def leave_adapter(job_dir: Path, model: Any, tok: Any, checkpoints: Sequence[dict[str, Any]],
                  collapse: dict[str, Any] | None, metrics: dict[str, Any], *, learning_rate: float, steps: int,
                  beta: float | None = None, unread: AnswerSet | None = None, unread_from: str = "training") -> Path:
    """Save the adapter a run leaves (served, published) as ``job_dir/adapter``: the model as trained, or after a
    ``collapse`` (:func:`qfnb.protocol.console.checkpoints.collapse`, put in ``metrics``) the last checkpoint that
    still answered; :class:`AnswersCollapsed` saying what was seen and what to lower when none did.

    A run that judged no checkpoint gives ``unread``: a few of its training prompts (``unread_from``; its held-out
    ones where it had some but no checkpoints, the base's answers taken or not), which the model as trained answers
    beside the base (:func:`read_final`); answers that degenerated there end the run the same way, nothing served."""
    adapter = job_dir / "adapter"
    if collapse is None and unread is not None and unread.prompts:
        collapse = read_final(job_dir, model, unread, metrics, step=steps, source=unread_from)
    if collapse is None:
        model.save_pretrained(str(adapter))
    else:
        metrics["collapse"] = collapse
        if collapse["lastGoodStep"] is None:
            raise AnswersCollapsed(ckpt.collapse_error(collapse, learning_rate=learning_rate, steps=steps,
                                                       beta=beta, base_rate=metrics.get("base_degeneration_rate")))
        kept = next(c for c in checkpoints if c["step"] == collapse["lastGoodStep"])
        shutil.rmtree(adapter, ignore_errors=True)
        shutil.copytree(str(kept["path"]), adapter)
        metrics["served_checkpoint"] = kept["step"]
    if (unjudged := ckpt.served_unjudged(checkpoints, collapse)) is not None:
        metrics["served_unjudged"] = unjudged
        log.warning("the served model (step %d) answers no better than its base: %s", unjudged["step"],
                    unjudged["seen"])
    tok.save_pretrained(str(adapter))  # the chat template travels with the adapter
    return adapter


def read_final(job_dir: Path, model: Any, answer_set: AnswerSet, metrics: dict[str, Any], *, step: int,
               source: str = "training") -> dict[str, Any] | None:
    """The answers of a run that judged no checkpoint: the model as trained answers a few of its *training*
    prompts (greedy, one batch), beside the base's answers to them, and :func:`ckpt.judge_checkpoint` reads them.
    The model trained on these prompts, so this measures no quality; but a policy that loops, or gives one answer
    to every prompt, does so here too. Against a base most of whose answers degenerated, only one sound answer to
    most prompts counts (:func:`ckpt.one_answer_collapse`). ``metrics["final_answers"]`` says what was read;
    the collapse (:func:`ckpt.collapse`'s fields, ``prompts``: ``source``) is returned, and written as a
    ``collapse`` progress line (the job's events, the dashboard), when the answers degenerated."""
    prompts = answer_set.prompts
    if answer_set.base is None:
        answer_set.answer_base(model)
    said, reasons = answer_set.generate(model)
    report, base = answer_set.judge(said, reasons), answer_set.base_report
    entry = answer_set.entry(said, reasons, report)
    # nothing is served on this verdict: against a base most of whose answers degenerated too (a random model's),
    # only one answer given to most prompts, which the base did not give, counts
    assert base is not None
    degenerate = entry[ckpt.DEGENERATE] is True and (base.rate <= 0.5 or ckpt.one_answer_collapse(report, base))
    metrics["final_answers"] = {"prompts": len(prompts), "from": source, ckpt.DEGENERATE: degenerate,
                                ckpt.DEGENERATION_RATE: entry[ckpt.DEGENERATION_RATE],
                                "degeneration": entry["degeneration"], "answers": entry["answers"],
                                "seconds": round(answer_set.seconds, 3)}
    if not degenerate:
        log.info("the final answers to %d %s prompts: %s", len(prompts), source, entry["degeneration"])
        return None
    example = next((a["answer"] for a in entry["answers"] if a["reason"]), None)
    found = {"step": step, "rate": entry[ckpt.DEGENERATION_RATE], "seen": entry["degeneration"],
             "example": example, "lastGoodStep": None, "prompts": source}
    progress_note(job_dir, {"step": step, "total_steps": step, "collapse": found})
    return found

