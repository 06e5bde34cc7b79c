"""The fine-tune worker's data-parallel group (``qfnb.local.training.process.distributed``): alone every call
is the identity; in a group of N each worker's shard is every N-th row, padded by wrapping around so
all shards have one length (the workers take the same steps) and together they cover every row. The
gloo group itself runs in the real two-worker Ray Train test (``tests/local/cluster/test_ray_train_real.py``, slow)."""

from __future__ import annotations

import pytest

from qfnb.local.training.process import distributed


def _member(rank: int, world: int) -> distributed.TorchGroup:
    member = object.__new__(distributed.TorchGroup)  # its rank and size, without a process group
    member.rank, member.world = rank, world
    return member


def test_alone_every_call_is_the_identity() -> None:
    group = distributed.current()  # no process group in the test process
    assert type(group) is distributed.Group and group.main and group.world == 1
    assert group.shard([1, 2, 3]) == [1, 2, 3] and group.mean(2.5) == 2.5 and group.total(7) == 7
    assert group.any(True) and not group.any(False) and group.from_main(True)


@pytest.mark.parametrize(("rows", "world"), [(8, 2), (7, 2), (5, 3), (2, 3)])
def test_shards_have_one_length_and_cover_every_row(rows: int, world: int) -> None:
    shards = [_member(rank, world).shard(list(range(rows))) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == -(-rows // world)
    assert set().union(*shards) == set(range(rows))
    assert [s[0] for s in shards] == [rank % rows for rank in range(world)]  # each from its rank, every world-th row
    assert not _member(1, 2).main and _member(0, 2).main
