"""The scope helper in a real IPython kernel full of objects with side effects: a lazy proxy whose
factory "connects", a DataFrame-like object with a 15 s ``__len__``, a dict subclass with ``__iter__``,
an int subclass with ``__repr__``, a property that writes a file, a metaclass with ``__eq__`` and
``__getattribute__``. None of them runs (each would write to a file), the helper answers at once,
and a completion still gets the kernel's names (a DataFrame's columns, a function's signature).
A busy kernel gives no names and no helper is queued behind its cell; ten asks at once run one
helper. The kernel's ledger session is the one the Jupyter server computes for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.multikernelmanager import AsyncMultiKernelManager

from qfnb.notebook.complete import scope
from qfnb.protocol.platform.usage_file import kernel_session

pytestmark = pytest.mark.timeout(180)

HOSTILE = '''
import pathlib, time
import pandas as pd
LOG = pathlib.Path({log!r})
def ran(what):
    with LOG.open("a") as f:
        f.write(what + "\\n")
class Lazy:
    def __init__(self, factory):
        object.__setattr__(self, "_factory", factory)
    def __getattr__(self, name):
        ran("lazy factory")
        return getattr(self._factory(), name)
    @property
    def __class__(self):
        ran("__class__")
        return dict
class SlowFrame:
    def __len__(self):
        ran("__len__")
        time.sleep(15)
        return 1
    @property
    def columns(self):
        ran("columns")
        return ["a"]
    def __repr__(self):
        ran("__repr__ of a frame-like")
        return "SlowFrame"
class Keys(dict):
    def __iter__(self):
        ran("__iter__ of a dict subclass")
        return iter(())
    def __len__(self):
        ran("__len__ of a dict subclass")
        return 0
class Count(int):
    def __repr__(self):
        ran("__repr__ of an int subclass")
        return "1"
class Writes:
    @property
    def value(self):
        ran("property")
        return 1
    def __getattr__(self, name):
        ran("__getattr__ " + name)
        raise AttributeError(name)
class Meta(type):
    def __eq__(cls, other):
        ran("metaclass __eq__")
        return False
    __hash__ = type.__hash__
    def __getattribute__(cls, name):
        ran("metaclass __getattribute__ " + name)
        return type.__getattribute__(cls, name)
class Odd(metaclass=Meta):
    pass
class Label:
    def __repr__(self):
        ran("__repr__ of a column label")
        return "L"
db = Lazy(lambda: ran("connect"))
orders_like = SlowFrame()
lookup = Keys(a=1)
count = Count(3)
writer = Writes()
odd = Odd()
def load(path: str, sep: str = ",", *, default=Label()) -> int:
    return 0
tickets = pd.DataFrame({{"priority": [1], "queue": ["ops"], Label(): [0]}})
'''


async def _run(manager: Any, code: str, timeout: float = 60) -> None:
    client = manager.client()
    client.start_channels()
    try:
        # the kernel may still be starting: until it answers kernel_info its IOPub may drop the
        # cell's messages (a subscriber joining late), and execute_interactive would wait them out
        await client.wait_for_ready(timeout=timeout)
        await client.execute_interactive(code, timeout=timeout)
    finally:
        client.stop_channels()


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[Any]:
    """A kernel started as the Jupyter server starts one (a multi-kernel manager's connection file)."""
    kernels = AsyncMultiKernelManager(connection_dir=str(tmp_path))
    kernel_id = await kernels.start_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        yield kernels.get_kernel(kernel_id)
    finally:
        await kernels.shutdown_all(now=True)


async def test_no_user_object_runs_and_the_names_still_come(kernel: Any, tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    await _run(kernel, HOSTILE.format(log=str(log)))
    assert not log.exists()  # (the cell itself ran nothing)
    kernel.execution_state = "idle"  # as the Jupyter server's kernel manager tracks it
    started = time.monotonic()
    state = await scope.Scopes().ask("k", kernel, timeout=10)
    took = time.monotonic() - started
    assert not log.exists(), f"the helper ran the user's code: {log.read_text()}"
    assert state is not None and took < 5
    assert "# tickets: DataFrame (1 rows), columns: 'priority', 'queue'" in state.names
    assert "# def load(path: str, sep: str = ',', *, default = ...) -> int" in state.names
    for name, kind in (("db", "Lazy"), ("orders_like", "SlowFrame"), ("lookup", "Keys"), ("count", "Count"),
                       ("writer", "Writes")):
        assert f"# {name}: __main__.{kind}" in state.names  # its type, nothing of it
    # the user's next cell is not held up
    started = time.monotonic()
    await _run(kernel, "1 + 1")
    assert time.monotonic() - started < 5


async def test_a_busy_kernel_gives_no_names_and_queues_nothing(kernel: Any, tmp_path: Path) -> None:
    scopes = scope.Scopes()
    cell = asyncio.ensure_future(_run(kernel, "import time; time.sleep(3); done = 1"))
    await asyncio.sleep(0.5)
    kernel.execution_state = "busy"
    started = time.monotonic()
    answers = await asyncio.gather(*(scopes.ask("k", kernel) for _ in range(10)))
    assert answers == [None] * 10 and time.monotonic() - started < 0.5
    await cell
    kernel.execution_state = "idle"
    started = time.monotonic()
    await _run(kernel, "1 + 1")  # nothing queued behind the cell
    assert time.monotonic() - started < 5
    # idle: ten asks at once share one helper run
    answers = await asyncio.gather(*(scopes.ask("k", kernel, timeout=10) for _ in range(10)))
    assert all(a is answers[0] for a in answers) and answers[0] is not None
    assert "# done = 1 (int)" in answers[0].names and not scopes.running


async def test_the_kernels_ledger_session_is_the_one_the_server_computes(kernel: Any, tmp_path: Path) -> None:
    out = tmp_path / "session.txt"
    await _run(kernel, f"from qfnb._core.record.ledger import SESSION\nopen({str(out)!r}, 'w').write(SESSION)")
    assert out.read_text() == kernel_session(kernel.kernel_id, kernel.provisioner.pid)
