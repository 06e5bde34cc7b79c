"""The chat footer says the model is loading while the local platform reports it (fake status)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nb_doubles import FakeChatBackend, RecordingPublisher

from qfnb._core.backend import daemon
from qfnb._core.backend.daemon import EngineState
from qfnb.notebook.chat import loading
from qfnb.notebook.chat.answer import CellAnswer, CellChatRequest, ChatDelta, ResourcesBackend
from tests.fakes.daemon_status import QWEN, STARTING, fake_status_daemon

LOADING = EngineState(model=QWEN, endpoint="qwen2_5_coder_0_5b_instruct", state="starting")
READY = EngineState(model=QWEN, endpoint="qwen2_5_coder_0_5b_instruct", state="ready")


def waiting_answer(model: str, engine: EngineState | None, waited: float = 3.0) -> CellAnswer:
    return CellAnswer(model=model, engine=engine, started=time.perf_counter() - waited)


def test_footer_says_loading_with_the_engines_time() -> None:
    engine = EngineState(model=QWEN, endpoint="e", state="starting", since=time.time() - 4.2)
    assert waiting_answer(QWEN, engine).footer == f"loading {QWEN} · 4 s"
    assert waiting_answer("ERNIE-Bot", engine).footer == f"ERNIE-Bot · loading {QWEN} · 4 s"  # an alias
    failed = EngineState(model=QWEN, endpoint="e", state="failed", since=time.time())
    assert waiting_answer(QWEN, failed).footer == f"failed to load {QWEN} · 0 s"


def test_footer_waits_plainly_otherwise() -> None:
    assert waiting_answer(QWEN, READY).footer == f"{QWEN} · waiting for the first token · 3 s"
    unknown = waiting_answer(QWEN, None).footer  # the cloud, or an older daemon: nobody says
    assert unknown == f"{QWEN} · waiting for the first token · 3 s (the model may be loading)"
    streaming = waiting_answer(QWEN, LOADING)
    streaming.text = "Hel"
    assert "loading" not in streaming.footer and streaming.footer.endswith("streaming…")


def test_match_engine_by_name_endpoint_or_the_one_loading() -> None:
    gemma = EngineState(model="Gemma-3-270M", endpoint="gemma_3_270m", state="ready")
    engines = [gemma, LOADING]
    assert loading.match_engine(engines, ["qwen2.5-coder-0.5b-instruct"]) is LOADING
    assert loading.match_engine(engines, [None, "gemma_3_270m"]) is gemma
    assert loading.match_engine(engines, ["ERNIE-Bot"]) is LOADING  # served under another name
    assert loading.match_engine([gemma, READY], ["ERNIE-Bot"]) is None
    two = [EngineState(model="Gemma-3-270M", endpoint="g", state="starting"), LOADING]
    assert loading.match_engine(two, ["ERNIE-Bot"]) is None  # which one? say nothing


class LoadingBackend(FakeChatBackend):
    """The first token comes after ``load`` s; until then the platform says the engine is starting."""

    def __init__(self, load: float) -> None:
        super().__init__("Hi there")
        self.loaded = threading.Event()
        self.load = load
        self.probes: list[tuple[CellChatRequest, str]] = []

    def engine_state(self, request: CellChatRequest, label: str) -> EngineState:
        self.probes.append((request, label))
        return READY if self.loaded.is_set() else EngineState(model=QWEN, endpoint="q", state="starting",
                                                                since=time.time() - 7)

    async def stream(self, request: CellChatRequest) -> AsyncIterator[ChatDelta]:
        await asyncio.sleep(self.load)
        self.loaded.set()
        async for delta in super().stream(request):
            yield delta


def test_qfchat_footer_says_loading_until_the_first_token(ip, pub: RecordingPublisher) -> None:
    backend = LoadingBackend(load=1.6)
    magics = ip.magics_manager.registry["QfnbMagics"]
    magics.chat_backend, magics.update_interval = backend, 0.05
    ip.run_line_magic("config", f"QfnbMagics.default_model = '{QWEN}'")
    ip.run_cell_magic("qfchat", "", "hi")
    plains = [o["data"]["text/plain"] for o in pub.outputs if "text/plain" in o["data"]]
    assert any(re.search(f"-- loading {re.escape(QWEN)} · [78] s · session default · 0 turns in context$", p)
               for p in plains), plains
    assert plains[-1].startswith("Hi there\n-- ") and "loading" not in plains[-1]
    assert backend.probes and backend.probes[0][1] == QWEN


def test_fast_answers_are_not_probed(ip, pub: RecordingPublisher) -> None:
    backend = LoadingBackend(load=0.0)
    ip.magics_manager.registry["QfnbMagics"].chat_backend = backend
    ip.run_cell_magic("qfchat", "", "hi")
    time.sleep(loading.FIRST_LOOK + 0.2)
    assert backend.probes == []  # a loaded model answers before the first look: no status request


def test_probe_errors_never_reach_the_chat(ip, pub: RecordingPublisher) -> None:
    backend = LoadingBackend(load=0.8)

    def broken(request: CellChatRequest, label: str) -> EngineState:
        raise RuntimeError("status route broke")

    backend.engine_state = broken  # type: ignore[method-assign]
    ip.magics_manager.registry["QfnbMagics"].chat_backend = backend
    ip.run_cell_magic("qfchat", "", "hi")
    assert pub.outputs[-1]["data"]["text/plain"].startswith("Hi there\n-- ")


def test_resources_backend_reads_the_local_daemons_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path))
    request = CellChatRequest(messages=[{"role": "user", "content": "hi"}], model=None, name=QWEN)
    backend = ResourcesBackend()
    with fake_status_daemon(tmp_path) as answer:
        assert backend.engine_state(request, QWEN) is None  # this kernel does not use the daemon (the cloud)
        assert answer.headers == []
        monkeypatch.setitem(daemon._known, tmp_path.resolve(), object())  # type: ignore[arg-type]
        state = backend.engine_state(request, QWEN)
        assert state is not None and (state.model, state.state, state.since) == (QWEN, "starting", STARTING["since"])
        answer.body = {"engines": [{**STARTING, "state": "ready"}]}
        state = backend.engine_state(request, QWEN)
        assert state is not None and state.state == "ready"
        answer.body = {"pid": 1}  # a daemon that does not report engines
        assert backend.engine_state(request, QWEN) is None
