"""DPO and KTO on the LoRA loop: the losses, their rows and their held-out scores.

The reference model is the base itself with the adapter switched off (peft's ``disable_adapter()``): no
second copy of the weights. A row's reference log-probabilities never change (the base is frozen), so each
is computed once, the first time its row is drawn, and kept. With a warm start (``warmStartSteps``: SFT
steps on the preferred answers first, :meth:`qfnb.local.training.modes.PreferenceMode.warm_start`), the
reference is the policy the warm start left, as DPO after SFT takes it: every row's reference is computed
then, at once (:meth:`PreferenceTask.fix_references`), and kept for a resume.

- DPO (Rafailov et al. 2023, the sigmoid loss as TRL's ``DPOTrainer`` takes it): with ``r = beta * (log
  pi(y|x) - log ref(y|x))`` for the preferred answer ``c`` and the rejected one ``r``, the loss is
  ``-log sigmoid(r_c - r_r)``.
- KTO (Ethayarajh et al. 2024, as TRL's ``KTOTrainer``): each answer is good or bad on its own; with the
  reference point ``z0`` (the policy's KL from the reference, estimated on the batch's prompts paired with
  other rows' answers, no gradient, clamped at 0), a good answer's loss is ``1 - sigmoid(beta * (logratio -
  z0))`` weighted by ``desirableWeight``, a bad one's ``1 - sigmoid(beta * (z0 - logratio))`` by
  ``undesirableWeight``. Each item's mismatched partner is fixed (the next item's answer), so its reference
  log-probability is kept like the item's own.

Against a collapse (a policy that drives the loss to 0 by making every answer the marker it learned to
prefer; each measured in ``docs/train-modes.md``):

- ``rpoAlpha`` (RPO, Pang et al. 2024, TRL's ``rpo_alpha``): the preferred answers' NLL (per token, the
  batch's mean; KTO: the good answers') times ``rpoAlpha`` is added to the loss, so the preferred answer
  itself stays likely;
- ``lengthNormalize``: a log-ratio is the mean over the answer's tokens, not the sum (as SimPO's and IPO's
  length-normalised rewards), so a long rejected answer does not dominate the margin;
- ``maxRewardMargin``: a pair whose reward margin (KTO: an answer whose reward beyond ``z0``) is already
  past the cap is no longer pushed (the margin is clamped, its gradient 0 there);
- ``marginStop``: the run ends once the mean reward margin of the last training batches reaches it
  (:attr:`PreferenceTask.stop_reason`, which the worker's loop reads).

These terms wrap each class's own objective (:meth:`PreferenceTask.terms`): a new preference loss gets them.

Held out (:class:`PreferenceScorer`): ``valid_preference_accuracy`` (DPO: the share of pairs whose preferred
answer gets the higher implied reward; KTO: the share of answers whose implied reward ``beta * logratio`` has
the sign of their label) and ``valid_reward_margin`` (DPO: the mean of ``r_c - r_r``; KTO: the mean reward
of the good answers less that of the bad ones), beside ``evalLoss`` (the mode's loss on the held-out rows).
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qfnb.local.training import data, lora
from qfnb.local.training.spec import Hyper
from qfnb.protocol.console.train_formats import Judged, Pair, Record

if TYPE_CHECKING:
    from torch import Tensor

Encoded = tuple[list[int], list[int]]


@dataclass
class PairRow:
    """A DPO pair, encoded: the prompt with the preferred answer, and with the rejected one."""

    chosen: Encoded
    rejected: Encoded
    ref: tuple[float, float] | None = None  # the reference's log-probabilities of both answers, once known

    @property
    def tokens(self) -> int:
        return len(self.chosen[0]) + len(self.rejected[0])

    @property
    def lengths(self) -> tuple[int, int]:
        """The answer tokens of the preferred and the rejected answer."""
        return answer_tokens(self.chosen), answer_tokens(self.rejected)


@dataclass
class JudgedRow:
    """A KTO item, encoded, with its label."""

    row: Encoded
    desirable: bool
    ref: float | None = None
    #: the prompt with another item's answer (KTO's reference point is the policy's log-ratio on these)
    mismatch: Encoded | None = None
    mismatch_ref: float | None = None  # the reference's log-probability of :attr:`mismatch`

    @property
    def tokens(self) -> int:
        return len(self.row[0])

    @property
    def length(self) -> int:
        return answer_tokens(self.row)


def answer_tokens(row: Encoded) -> int:
    """The labelled (answer) tokens of an encoded row, as :func:`sequence_logps` sums them."""
    return max(1, sum(1 for x in row[1][1:] if x != data.IGNORE))


def encode(tok: Any, records: Sequence[Record], max_seq_len: int) -> list[PairRow | JudgedRow]:
    """The records' rows (those whose answers do not fit ``maxSeqLen`` at all are dropped, as SFT's)."""
    out: list[PairRow | JudgedRow] = []
    for r in records:
        if isinstance(r, Pair):
            c = data.encode(tok, data.Example(r.messages, r.chosen), max_seq_len)
            j = data.encode(tok, data.Example(r.messages, r.rejected), max_seq_len)
            if c is not None and j is not None:
                out.append(PairRow(c, j))
        elif isinstance(r, Judged):
            e = data.encode(tok, data.Example(r.messages, r.answer), max_seq_len)
            if e is not None:
                out.append(JudgedRow(e, r.desirable))
        else:
            raise TypeError(f"a preference run takes DPO pairs or KTO items, got {type(r).__name__}")
    if not out:
        raise data.DataError(f"no preference row fits maxSeqLen={max_seq_len}")
    judged = _judged(out)
    for i, item in enumerate(judged):  # each item's partner: the next one's answer (fixed, so its reference is kept)
        item.mismatch = _mismatched(item.row, judged[(i + 1) % len(judged)].row)
    return out


def preferred(rows: Sequence[PairRow | JudgedRow]) -> list[Encoded]:
    """The rows' preferred answers with their prompts (a pair's chosen, a good KTO item): a warm start's rows."""
    return [r.chosen if isinstance(r, PairRow) else r.row for r in rows if isinstance(r, PairRow) or r.desirable]


def sequence_logps(model: Any, ids: Tensor, mask: Tensor, labels: Tensor) -> Tensor:
    """Each row's summed log-probability of its labelled (answer) tokens (:func:`.lora.labelled_logits`)."""
    import torch

    logits, targets, keep = lora.labelled_logits(model, ids, mask, labels)
    token_logps = torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)
    rows = keep.nonzero()[:, 0]
    return torch.zeros(ids.shape[0], dtype=token_logps.dtype).index_add(0, rows, token_logps)


@contextlib.contextmanager
def _reference(model: Any) -> Iterator[None]:
    """The base model: the adapter off, no gradients."""
    import torch

    with torch.no_grad(), model.disable_adapter():
        yield


def _mismatched(row: Encoded, other: Encoded) -> Encoded:
    """``row``'s prompt with ``other``'s answer (KTO's KL estimate), cut to the longer of the two rows."""
    ids, labels = row
    n_prompt = next((k for k, x in enumerate(labels) if x != data.IGNORE), len(labels))
    o_ids, o_labels = other
    o_prompt = next((k for k, x in enumerate(o_labels) if x != data.IGNORE), len(o_labels))
    limit = max(len(ids), len(o_ids))
    return ((ids[:n_prompt] + o_ids[o_prompt:])[:limit], ([data.IGNORE] * n_prompt + o_labels[o_prompt:])[:limit])


@dataclass
class PreferenceTask(ABC):
    """What DPO and KTO share: the rows' reference log-probabilities (the adapter off, once per row), the
    step's loss on the policy's log-ratios and its held-out score. :class:`DPOTask` and :class:`KTOTask`
    each say how their rows become tensors and what their objective is."""

    hyper: Hyper
    pad_id: int
    stats: dict[str, float] = field(default_factory=dict)  # the last step's rewards, for the progress line
    margins: list[float] = field(default_factory=list)  # each training step's mean reward margin
    stop_reason: str | None = None  # set once ``marginStop`` is reached: the worker's loop ends the run

    #: the reference is the policy as :meth:`fix_references` found it (after a warm start), not the base
    warm_reference: bool = False

    def references(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> None:
        """Fill in the rows' reference log-probabilities that are not known yet (the base's)."""
        todo = [r for r in rows if not _referenced(r)]
        if todo and self.warm_reference:
            raise RuntimeError(f"{len(todo)} rows have no reference: fix_references() must see every row")
        if todo:
            with _reference(model), _autocast():
                self.reference_logps(model, todo)

    def fix_references(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> None:
        """Make the policy as it is now (the adapter on) the reference of ``rows``, all computed at once."""
        import torch

        for r in rows:
            r.ref = None
            if isinstance(r, JudgedRow):
                r.mismatch_ref = None
        with torch.no_grad(), _autocast():
            self.reference_logps(model, rows)
        self.warm_reference = True

    def restore_references(self, rows: Sequence[PairRow | JudgedRow], saved: Sequence[Sequence[float]]) -> None:
        """Take back references :func:`reference_state` saved (a resumed run's warm-started reference)."""
        if len(saved) != len(rows):
            raise ValueError(f"saved references are for {len(saved)} rows, the run has {len(rows)}")
        for r, values in zip(rows, saved, strict=True):
            if isinstance(r, PairRow):
                r.ref = (float(values[0]), float(values[1]))
            else:
                r.ref, r.mismatch_ref = float(values[0]), float(values[1])
        self.warm_reference = True

    @abstractmethod
    def reference_logps(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> None:
        """Compute the reference log-probabilities of ``rows`` (inside the reference's context)."""

    @abstractmethod
    def batch(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> tuple[Any, ...]:
        """The tensors of one step: ``(ids, mask, labels, reference log-probs, the objective's extra)``."""

    @abstractmethod
    def objective(self, logratio: Tensor, extra: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The loss on the policy's log-ratios (``extra``: what :meth:`batch` put beside them) and its stats."""

    @abstractmethod
    def preferred_nll(self, logps: Tensor, lengths: Tensor, extra: Tensor) -> Tensor:
        """The preferred answers' mean NLL per token (RPO's term)."""

    @abstractmethod
    def held_out(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> tuple[Tensor, dict[str, float]]:
        """The objective on held-out rows (their references known), no gradient."""

    def terms(self, logps: Tensor, ref: Tensor, lengths: Tensor, extra: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The loss of a batch from its answers' log-probabilities (``logps``), the reference's (``ref``) and the
        answers' token counts: :meth:`objective` with the anti-collapse terms the hyperparameters set
        (``lengthNormalize``, ``rpoAlpha``; ``maxRewardMargin`` is the objective's own)."""
        logratio = logps - ref
        if self.hyper.length_normalize:
            logratio = logratio / lengths
        loss, stats = self.objective(logratio, extra)
        nll = self.preferred_nll(logps, lengths, extra)
        stats["chosen_nll"] = float(nll.detach())
        if self.hyper.rpo_alpha > 0:
            loss = loss + self.hyper.rpo_alpha * nll
        return loss, stats

    def loss(self, model: Any, ids: Tensor, mask: Tensor, labels: Tensor, ref: Tensor, extra: Tensor) -> Tensor:
        """The batch's loss; :attr:`stop_reason` is set once the last two batches' mean reward margin reaches
        ``marginStop``."""
        logps = sequence_logps(model, ids, mask, labels)
        loss, self.stats = self.terms(logps, ref.to(ids.device), _lengths(labels), extra)
        self.margins.append(self.stats["reward_margin"])
        stop = self.hyper.margin_stop
        recent = self.margins[-2:]
        if stop > 0 and self.stop_reason is None and len(recent) == 2 and sum(recent) / 2 >= stop:
            self.stop_reason = (f"the reward margin of the last two batches ({sum(recent) / 2:.3g}) reached "
                                f"marginStop={stop:g} at step {len(self.margins)}")
        return loss


class DPOTask(PreferenceTask):
    """DPO: a pair's chosen and rejected answers, in one batch (the chosen ones first)."""

    def reference_logps(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> None:
        pairs = _pairs(rows)
        logps = _logps(model, [p.chosen for p in pairs] + [p.rejected for p in pairs], self.pad_id)
        for i, p in enumerate(pairs):
            p.ref = (float(logps[i]), float(logps[len(pairs) + i]))

    def batch(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> tuple[Any, ...]:
        import torch

        self.references(model, rows)
        pairs = _pairs(rows)
        ids, mask, labels = data.collate([p.chosen for p in pairs] + [p.rejected for p in pairs], self.pad_id)
        return ids, mask, labels, _pair_refs(pairs), torch.zeros(0)

    def objective(self, logratio: Tensor, extra: Tensor) -> tuple[Tensor, dict[str, float]]:
        return dpo_loss(logratio, self.hyper.beta, self.hyper.max_reward_margin)

    def preferred_nll(self, logps: Tensor, lengths: Tensor, extra: Tensor) -> Tensor:
        preferred = slice(0, logps.shape[0] // 2)
        return -(logps[preferred] / lengths[preferred]).mean()

    def held_out(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> tuple[Tensor, dict[str, float]]:
        import torch

        pairs = _pairs(rows)
        logps = _logps(model, [p.chosen for p in pairs] + [p.rejected for p in pairs], self.pad_id)
        lengths = [p.lengths[0] for p in pairs] + [p.lengths[1] for p in pairs]
        return self.terms(torch.tensor(logps), _pair_refs(pairs), torch.tensor(lengths), torch.zeros(0))


@dataclass
class KTOTask(PreferenceTask):
    """KTO: each answer on its own with its label, against a reference point estimated on the batch."""

    kl: float = 0.0  # the last reference point, for a batch of one

    def reference_logps(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> None:
        items = _judged(rows)
        logps = _logps(model, [j.row for j in items] + [_partner(j) for j in items], self.pad_id)
        for i, j in enumerate(items):
            j.ref, j.mismatch_ref = float(logps[i]), float(logps[len(items) + i])

    def batch(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> tuple[Any, ...]:
        """``extra``: the items' labels, then the reference point."""
        import torch

        self.references(model, rows)
        items = _judged(rows)
        ids, mask, labels = data.collate([j.row for j in items], self.pad_id)
        ref = torch.tensor([j.ref for j in items if j.ref is not None])
        desirable = torch.tensor([1.0 if j.desirable else 0.0 for j in items])
        self.kl = self._kl(model, items)
        return ids, mask, labels, ref, torch.cat([desirable, torch.tensor([self.kl])])

    def _kl(self, model: Any, items: list[JudgedRow]) -> float:
        """The reference point: the mean log-ratio of the items' mismatched prompt/answer rows (their
        references kept beside the items'), no gradient, at least 0."""
        import torch

        with torch.no_grad(), _autocast():
            policy = _logps(model, [_partner(j) for j in items], self.pad_id)
        ratios = [p - (j.mismatch_ref or 0.0) for p, j in zip(policy, items, strict=True)]
        return max(0.0, sum(ratios) / len(ratios))

    def objective(self, logratio: Tensor, extra: Tensor) -> tuple[Tensor, dict[str, float]]:
        return kto_loss(logratio, extra[:-1] > 0.5, float(extra[-1]), self.hyper)

    def preferred_nll(self, logps: Tensor, lengths: Tensor, extra: Tensor) -> Tensor:
        """The good answers' (none: 0, with the batch's graph)."""
        desirable = extra[:-1] > 0.5
        return -(logps[desirable] / lengths[desirable]).mean() if bool(desirable.any()) else logps.sum() * 0

    def held_out(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> tuple[Tensor, dict[str, float]]:
        import torch

        items = _judged(rows)
        logps = torch.tensor(_logps(model, [j.row for j in items], self.pad_id))
        ref = torch.tensor([j.ref for j in items if j.ref is not None])
        desirable = torch.tensor([1.0 if j.desirable else 0.0 for j in items])
        return self.terms(logps, ref, torch.tensor([j.length for j in items]),
                          torch.cat([desirable, torch.tensor([self.kl])]))


def _partner(item: JudgedRow) -> Encoded:
    return item.mismatch if item.mismatch is not None else item.row


def _referenced(row: PairRow | JudgedRow) -> bool:
    return row.ref is not None and (isinstance(row, PairRow) or row.mismatch_ref is not None)


def reference_state(rows: Sequence[PairRow | JudgedRow]) -> list[list[float]]:
    """The rows' reference log-probabilities, as a resumed run takes them back
    (:meth:`PreferenceTask.restore_references`)."""
    out: list[list[float]] = []
    for r in rows:
        if isinstance(r, PairRow) and r.ref is not None:
            out.append(list(r.ref))
        elif isinstance(r, JudgedRow) and r.ref is not None and r.mismatch_ref is not None:
            out.append([r.ref, r.mismatch_ref])
        else:
            raise ValueError("a row has no reference yet")
    return out


def _pairs(rows: Sequence[PairRow | JudgedRow]) -> list[PairRow]:
    return [r for r in rows if isinstance(r, PairRow)]


def _judged(rows: Sequence[PairRow | JudgedRow]) -> list[JudgedRow]:
    return [r for r in rows if isinstance(r, JudgedRow)]


def _pair_refs(pairs: Sequence[PairRow]) -> Tensor:
    """The pairs' reference log-probabilities: the chosen answers', then the rejected ones'."""
    import torch

    return torch.tensor([p.ref[0] for p in pairs if p.ref] + [p.ref[1] for p in pairs if p.ref])


def _lengths(labels: Tensor) -> Tensor:
    """Each row's labelled (answer) tokens, as :func:`sequence_logps` counts them."""
    return (labels[:, 1:] != data.IGNORE).sum(1).clamp(min=1)


def dpo_loss(logratio: Tensor, beta: float, max_margin: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """DPO's sigmoid loss on ``logratio`` (the chosen answers' log-ratios, then the rejected ones'), and
    the batch's reward accuracy and margin; a margin beyond ``max_margin`` (when above 0) counts as that cap."""
    import torch

    n = logratio.shape[0] // 2
    margin = beta * (logratio[:n] - logratio[n:])
    capped = margin.clamp(max=max_margin) if max_margin > 0 else margin
    loss = -torch.nn.functional.logsigmoid(capped).mean()
    seen = margin.detach()
    return loss, {"reward_accuracy": float((seen > 0).float().mean()), "reward_margin": float(seen.mean())}


def kto_loss(logratio: Tensor, desirable: Tensor, kl: float, hyper: Hyper) -> tuple[Tensor, dict[str, float]]:
    """KTO's loss on the items' log-ratios, with reference point ``kl``."""
    import torch

    good_reward, bad_reward = hyper.beta * (logratio - kl), hyper.beta * (kl - logratio)
    if hyper.max_reward_margin > 0:
        good_reward, bad_reward = good_reward.clamp(max=hyper.max_reward_margin), bad_reward.clamp(
            max=hyper.max_reward_margin)
    good = hyper.desirable_weight * (1 - torch.sigmoid(good_reward))
    bad = hyper.undesirable_weight * (1 - torch.sigmoid(bad_reward))
    loss = torch.where(desirable, good, bad).mean()
    return loss, {"kl": round(kl, 6), **_kto_scores(hyper.beta * logratio.detach(), desirable)}


def _kto_scores(reward: Tensor, desirable: Tensor) -> dict[str, float]:
    """The share of items whose reward has their label's sign (good above 0, bad below), and the good
    answers' mean reward less the bad ones'."""
    right = float(((reward > 0) == desirable).logical_and(reward != 0).float().mean())
    good = reward[desirable]
    bad = reward[~desirable]
    margin = (float(good.mean()) if good.numel() else 0.0) - (float(bad.mean()) if bad.numel() else 0.0)
    return {"reward_accuracy": right, "reward_margin": margin}


def _logps(model: Any, rows: Sequence[Encoded], pad_id: int, size: int = 8) -> list[float]:
    out: list[float] = []
    for start in range(0, len(rows), size):
        ids, mask, labels = data.collate(rows[start:start + size], pad_id)
        out.extend(float(x) for x in sequence_logps(model, ids, mask, labels))
    return out


def _autocast() -> Any:
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=lora.NATIVE_BF16)


class PreferenceScorer:
    """The held-out rows' preference scores at a checkpoint (``valid_preference_accuracy``,
    ``valid_reward_margin``, and the mode's loss as ``evalLoss``)."""

    def __init__(self, task: PreferenceTask, rows: Sequence[PairRow | JudgedRow]) -> None:
        self.task, self.rows = task, list(rows)
        self.seconds = 0.0

    @property
    def examples(self) -> int:
        return len(self.rows)

    def score(self, model: Any) -> dict[str, float]:
        import torch

        t0, was_training = time.time(), model.training
        model.eval()
        try:
            self.task.references(model, self.rows)
            with torch.no_grad(), _autocast():
                loss, stats = self.task.held_out(model, self.rows)
        finally:
            if was_training:
                model.train()
            self.seconds += time.time() - t0
        return {"evalLoss": float(loss), "valid_preference_accuracy": stats["reward_accuracy"],
                "valid_reward_margin": stats["reward_margin"]}
