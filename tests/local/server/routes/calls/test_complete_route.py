"""``POST /qfnb/complete`` on the local platform (in-process, the Fake-Coder engine double): the
answer and its usage, the platform's key required, a bad field refused by name before anything
runs, a model that cannot fill in the middle refused, the call counted in ``/metrics`` under its own
route; and the llama engine's ``/infill`` body and stream (:mod:`qfnb.local.engines.llama.infill`)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_helpers import bearer, client_for

from qfnb.local.engines.base import CannotServe, Delta, aclose
from qfnb.local.engines.lanes import LaneGate
from qfnb.local.engines.llama import infill, watchdog
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.external import ExternalEngine
from qfnb.local.engines.llama.link.transport import Endpoint
from qfnb.local.server.routes.calls.complete import WithdrawnCollector, _counted
from qfnb.protocol.wires.local.completion import COMPLETE_ROUTE

sys.path.insert(0, str(Path(__file__).parents[4] / "notebook"))
from complete_doubles import FakeCoderRegistry

BODY = {"model": "Fake-Coder", "prefix": "total = sales[", "suffix": "\nprint(total)",
        "extra": [{"filename": "kernel_names.py", "text": "# sales: DataFrame (3 rows), columns: 'region', 'units'"}],
        "max_tokens": 16, "stop": ["\n"], "key": "nb.ipynb"}


@pytest.fixture()
def coder(tmp_path: Path) -> Any:
    with client_for(tmp_path, FakeCoderRegistry()) as c:
        yield c


def test_a_completion_answers_with_the_context_it_was_given_and_is_counted(coder: Any) -> None:
    headers = {"Authorization": f"Bearer {bearer(coder)}"}
    reply = coder.post(COMPLETE_ROUTE, json=BODY, headers=headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["text"] == "'region']" and body["model"] == "Fake-Coder" and body["finish"] == "normal"
    assert body["usage"]["completion_tokens"] == 2 and body["usage"]["prompt_tokens"] > 0
    metrics = coder.get("/metrics", headers=headers).text
    assert f'qfnb_requests_total{{model="Fake-Coder",route="{COMPLETE_ROUTE}",status="2xx"}} 1.0' in metrics
    assert "qfnb_completions_withdrawn_total 0.0" in metrics


def test_refusals_name_the_field_and_need_the_key(coder: Any) -> None:
    assert coder.post(COMPLETE_ROUTE, json=BODY).status_code == 401
    headers = {"Authorization": f"Bearer {bearer(coder)}"}
    for field, value in (("max_tokens", 999), ("extra", "not a list"), ("colour", "red")):
        reply = coder.post(COMPLETE_ROUTE, json={**BODY, field: value}, headers=headers)
        assert reply.status_code == 400 and reply.json()["error"]["param"] == field, reply.text
    reply = coder.post(COMPLETE_ROUTE, json={**BODY, "model": "Tiny-Chat"}, headers=headers)
    assert reply.status_code == 400 and "cannot fill in the middle" in reply.json()["error"]["message"]


def test_a_stream_closed_before_its_end_is_counted_as_withdrawn() -> None:
    async def slow() -> Any:
        for i in range(100):
            await asyncio.sleep(0.01)
            yield Delta("x", None, 1, i + 1)

    async def main() -> int:
        withdrawn = WithdrawnCollector()
        stream = _counted(slow(), withdrawn)
        async for _ in stream:
            break
        await aclose(stream)
        done = _counted(_finished(), withdrawn)
        assert [d.text async for d in done] == ["a", ""]
        return withdrawn.count

    assert asyncio.run(main()) == 1


async def _finished() -> Any:
    yield Delta("a", None, 1, 1)
    yield Delta("", "normal", 1, 1)


def test_the_infill_body_and_the_engine_stream() -> None:
    ask = infill.InfillAsk("def f(", ")", (("cell_1.py", "x = 1\n"),), 8, ("\n",), "doc")
    assert ask.body()["input_extra"] == [{"filename": "cell_1.py", "text": "x = 1\n"}]
    assert ask.body()["n_predict"] == 8 and ask.body()["stop"] == ["\n"] and ask.body()["cache_prompt"]
    assert ask.body()["n_cache_reuse"] == infill.CACHE_REUSE > 0  # moved context chunks are not read again
    with pytest.raises(ValueError, match="max_tokens"):
        infill.InfillAsk("x", max_tokens=1000)
    seen: list[dict[str, Any]] = []

    def engine(request: httpx.Request) -> httpx.Response:
        if not seen:  # the first try meets a pooled connection the engine had closed: sent again
            seen.append({})
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        seen.append({"path": request.url.path, **json.loads(request.content)})
        chunks = [{"content": "a, b", "stop": False}, {"content": "", "stop": True, "stop_type": "word",
                                                          "tokens_evaluated": 12, "tokens_predicted": 3,
                                                          "timings": {"cache_n": 9}}]
        events = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode()
        return httpx.Response(200, stream=httpx.ByteStream(events), headers={"content-type": "text/event-stream"})

    async def main() -> list[Any]:
        transport_client = httpx.AsyncClient(transport=httpx.MockTransport(engine))
        target = Endpoint("http://engine/v1", "k", {"lora": []}, group=None)
        coder = LlamaEngine("m", lambda: target, gate=LaneGate("m", 2, 4), n_ctx=4096)

        from qfnb.local.engines.llama.link import transport

        transport._clients[asyncio.get_running_loop()] = transport_client
        try:  # the engine's one admission: its gate's turn, then the stream (sent again on a stale connection)
            return [d async for d in coder.infill(ask)]
        finally:
            await transport_client.aclose()

    deltas = asyncio.run(main())
    assert len(seen) == 2 and seen[1]["path"] == "/infill" and seen[1]["id_slot"] in (0, 1, 2)
    assert seen[1]["lora"] == []
    assert "".join(d.text for d in deltas) == "a, b"
    last = deltas[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens, last.cached_tokens) == ("stop", 12, 3, 9)


def test_only_a_coder_on_our_own_llama_server_fills_in_the_middle() -> None:
    external = ExternalEngine("ext", Endpoint("http://x/v1"), gate=LaneGate("ext", 1, 1))
    assert not isinstance(external, infill.Infiller)  # the route refuses it by name (above)
    gemma = LlamaEngine("gemma", lambda: Endpoint("http://x/v1"), gate=LaneGate("gemma", 1, 1), n_ctx=4096,
                        template="gemma")
    with pytest.raises(CannotServe, match="fill in the middle"):
        gemma.infill(infill.InfillAsk("x"))


def test_a_completion_sent_again_after_a_restart_goes_on_from_its_text() -> None:
    body = infill.InfillAsk("def f(", ")", max_tokens=8).body()
    again = watchdog._continued(body, "a, b", 3)  # the engine restarted under it after 3 tokens
    assert again["input_prefix"] == "def f(a, b" and again["input_suffix"] == ")" and again["n_predict"] == 5
    assert watchdog._continued(body, "", 0) is body


def test_a_streamed_completion_sends_its_pieces_then_the_whole_and_its_usage(coder: Any) -> None:
    headers = {"Authorization": f"Bearer {bearer(coder)}"}
    reply = coder.post(COMPLETE_ROUTE, json={**BODY, "stream": True}, headers=headers)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in reply.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    assert "".join(p["delta"] for p in parsed) == parsed[-1]["text"] == "'region']"
    assert parsed[-1]["finish"] == "normal" and parsed[-1]["usage"]["completion_tokens"] == 2
    assert all("usage" not in p for p in parsed[:-1])
