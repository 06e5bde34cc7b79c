"""Inline completions on the real local coder model (Qwen2.5-Coder-0.5B through llama-server's
``/infill``), through the server extension's own call to the daemon: ``df[``-style code after a cell
that built a DataFrame is completed with one of its columns when the kernel's names are given, and a
request withdrawn mid-generation is counted at the daemon and stops the engine's slot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qfnb._core.backend import daemon
from qfnb._core.backend.discovery import read_runtime
from qfnb._core.record.ledger import default_ledger
from qfnb.notebook.complete import backends
from qfnb.notebook.complete.context import FimRequest, finish_suggestion
from qfnb.protocol.wires.local.completion import COMPLETION_KIND

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

CELL = "import pandas as pd\nsales = pd.read_csv('q3.csv')"
NAMES = "# sales: DataFrame (480 rows), columns: 'region', 'units_sold', 'unit_price'"


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path))
    daemon.ensure_daemon(tmp_path)
    try:
        yield tmp_path
    finally:
        daemon.stop_daemon(tmp_path, force=True)


def _withdrawn(data: Path) -> float:
    info = read_runtime(data)
    assert info is not None
    for line in httpx.get(info.url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("qfnb_completions_withdrawn_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_coder_names_a_column_of_the_kernels_dataframe_and_a_withdrawn_request_is_counted(
        platform: Path) -> None:
    completion = FimRequest.of("by_region = sales.groupby(", "", [CELL], NAMES)
    found = asyncio.run(backends.local(completion, None, "sales.ipynb"))
    text = finish_suggestion(found.text, completion.prefix, completion.suffix)
    assert any(column in text for column in ("region", "units_sold", "unit_price")), text
    assert found.model == "Qwen2.5-Coder-0.5B-Instruct" and found.completion_tokens > 0
    backends.record_local(found, None)
    assert [r.api for r in default_ledger().rows()] == [COMPLETION_KIND]

    before = _withdrawn(platform)
    # a list the model goes on counting, on one line: no line ends it before its 256 tokens (a docstring's
    # opening quotes were sometimes closed at once, and there was nothing left to withdraw)
    long = FimRequest.of("squares = [1, 4, 9, 16, 25, 36, 49, 64, 81, 100, ", "", [CELL], NAMES, max_tokens=256)

    async def typed_past() -> None:
        task = asyncio.ensure_future(backends.local(long, None, "sales.ipynb"))
        await asyncio.sleep(3.0)  # at the engine, generating
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(typed_past())
    for _ in range(40):
        if _withdrawn(platform) > before:
            break
        asyncio.run(asyncio.sleep(0.25))
    assert _withdrawn(platform) > before
    # llama-server stopped the slot's task (it says so once its current batch is done: on a loaded
    # machine, seconds after the daemon counted the withdrawal)
    engine_log = next((platform / "logs").glob("engine-*.log"))
    for _ in range(240):
        if "cancel task" in engine_log.read_text():
            break
        asyncio.run(asyncio.sleep(0.25))
    assert "cancel task" in engine_log.read_text()
