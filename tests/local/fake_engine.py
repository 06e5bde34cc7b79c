"""llama-server's double (``fake_llama_server.py``) as the platform's engine: the supervised process and the
engine on it, made as the registry makes them."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama.engine import LlamaEngine, llama_endpoint, llama_ready_endpoint
from qfnb.local.engines.llama.process.command import ServerConfig
from qfnb.local.engines.llama.process.server import LlamaServer

FAKE = Path(__file__).with_name("fake_llama_server.py")


@contextlib.contextmanager
def fake_engine(tmp_path: Path, slots: int, **config: Any) -> Iterator[tuple[LlamaEngine, LlamaServer]]:
    """The double as ``tmp_path/llama-server`` (its behaviour set by the caller's ``FAKE_*`` variables), served
    with ``slots`` slots and ``config`` (:class:`ServerConfig`'s fields); stopped on exit."""
    binary = tmp_path / "llama-server"
    binary.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    binary.chmod(0o755)
    server = LlamaServer(ServerConfig(name="fake", gguf=tmp_path / "m.gguf", log_dir=tmp_path / "logs", slots=slots,
                                      idle_seconds=3600, **config), binary=binary)
    chat = LlamaEngine("fake", llama_endpoint(server, None), gate=LaneGate("fake", slots, 8), n_ctx=4096,
                       ready=llama_ready_endpoint(server, None))
    try:
        yield chat, server
    finally:
        server.close()
