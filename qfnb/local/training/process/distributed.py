"""Data-parallel training for the fine-tune worker: what one training process needs to know about
the others when several train one adapter together (Ray Train's ``TorchTrainer`` with more than one
worker starts them and joins them in a ``torch.distributed`` process group, gloo on CPU).

:func:`current` gives the process's :class:`Group`: alone (the local platform's worker, or one Ray
Train worker) every call is a no-op; in a group of N the rows are sharded (each worker trains on
every N-th row, the shards padded to one length so every worker takes the same steps), the loss
runs through ``DistributedDataParallel`` (each backward averages the LoRA gradients over the
workers), and rank 0 alone scores and saves checkpoints, deciding an early stop for all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from qfnb.local.training import lora

log = logging.getLogger("qfnb.local.training.process.distributed")

Row = TypeVar("Row")
#: the loss of one batch (``input_ids``, ``attention_mask``, ``labels``, and a train mode's other tensors)
LossFn = Callable[..., Any]
#: a train mode's loss of ``model`` on one batch's tensors (SFT's: :func:`~qfnb.local.training.lora.answer_loss`)
ModelLoss = Callable[..., Any]


class Group:
    """One process training alone: rank 0 of 1."""

    rank, world = 0, 1

    @property
    def main(self) -> bool:
        """Whether this process keeps the run's record (progress, checkpoints, the adapter)."""
        return self.rank == 0

    def shard(self, rows: Sequence[Row]) -> list[Row]:
        """This process's rows."""
        return list(rows)

    def loss_fn(self, model: Any, loss: ModelLoss = lora.answer_loss) -> LossFn:
        """The function ``train_step`` takes a batch's ``loss`` with (its backward trains ``model``)."""
        return lambda *batch: loss(model, *batch)

    def mean(self, value: float) -> float:
        """``value`` averaged over the group."""
        return value

    def total(self, value: int) -> int:
        """``value`` summed over the group."""
        return value

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is set on any."""
        return flag

    def from_main(self, flag: bool) -> bool:
        """Rank 0's ``flag``, on every process."""
        return flag


class TorchGroup(Group):
    """This process in an initialised ``torch.distributed`` process group of more than one."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def shard(self, rows: Sequence[Row]) -> list[Row]:
        """Every ``world``-th row from ``rank``, wrapping around so every shard has ``ceil(n / world)``
        rows (as ``DistributedSampler`` pads): the workers take the same number of steps."""
        if not rows:
            return []
        per = -(-len(rows) // self.world)
        return [rows[i % len(rows)] for i in range(self.rank, per * self.world, self.world)]

    def loss_fn(self, model: Any, loss: ModelLoss = lora.answer_loss) -> LossFn:
        import torch
        from torch.nn.parallel import DistributedDataParallel

        class _Loss(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *batch: Any) -> Any:
                return loss(self.inner, *batch)

        # the frozen base weights are the same file on every worker: only the trainable (LoRA) ones
        # are broadcast from rank 0, not the whole model (init_sync would send all of it)
        for param in model.parameters():
            if param.requires_grad:
                self.dist.broadcast(param.data, src=0)
        wrapped: LossFn = DistributedDataParallel(_Loss(model), init_sync=False, broadcast_buffers=False)
        return wrapped

    def _reduce(self, value: float, average: bool) -> float:
        import torch

        tensor = torch.tensor([float(value)], dtype=torch.float64)
        self.dist.all_reduce(tensor)
        return float(tensor.item()) / (self.world if average else 1)

    def mean(self, value: float) -> float:
        return self._reduce(value, average=True)

    def total(self, value: int) -> int:
        return round(self._reduce(value, average=False))

    def any(self, flag: bool) -> bool:
        return self._reduce(1.0 if flag else 0.0, average=False) > 0

    def from_main(self, flag: bool) -> bool:
        box = [bool(flag)]
        self.dist.broadcast_object_list(box, src=0)
        return bool(box[0])


def current() -> Group:
    """This process's group: a :class:`TorchGroup` when ``torch.distributed`` holds more than one, else alone."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch without distributed support
        return Group()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        group = TorchGroup()
        log.info("data-parallel training: rank %d of %d", group.rank, group.world)
        return group
    return Group()
