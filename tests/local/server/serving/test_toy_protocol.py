"""A fifth protocol takes one converter module (``toy_protocol``) and one route table (here): it
is served by the same flow as Qianfan v1 and OpenAI chat, with no change to that flow."""

from __future__ import annotations

from pathlib import Path

from platform_doubles import FakeRegistry
from platform_helpers import make_settings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from toy_protocol import ToyRender, ToyRequest, chat_ask

from qfnb.local.domain.state.values import BodyError
from qfnb.local.server.app import create_app
from qfnb.local.server.serving.lane import lane_of
from qfnb.local.server.serving.serve import serve


async def toy(request: Request) -> Response:
    req = ToyRequest.model_validate(await request.json())
    try:
        return await serve(request, request.app.state.platform, chat_ask(req, lane_of(request)),
                           ToyRender(req.stream))
    except BodyError as exc:  # the toy's error mapper: an unknown model
        return JSONResponse({"toy_error": str(exc)}, status_code=404)


ROUTES = [Route("/toy/say", toy, methods=["POST"])]


def test_a_toy_protocol_is_one_converter_and_one_route_table(tmp_path: Path) -> None:
    registry = FakeRegistry()
    app = create_app(make_settings(tmp_path), registry, extra_routes=ROUTES)
    with TestClient(app, base_url="http://127.0.0.1:8123") as client:
        whole = client.post("/toy/say", json={"model": "Tiny-Chat", "say": "hello toy world"})
        assert whole.json() == {"heard": "tiny-chat: hello toy world", "words": 4, "done": "normal",
                                "by": "Tiny-Chat"}
        cut = client.post("/toy/say", json={"model": "tiny-chat", "say": "one two three", "words": 2})
        assert cut.json()["heard"] == "tiny-chat: one" and cut.json()["done"] == "length"
        streamed = client.post("/toy/say", json={"model": "Tiny-Chat", "say": "a b", "stream": True})
        assert streamed.text.splitlines() == ["said: tiny-chat:", "said: a", "said: b", "done: normal after 3"]
        missing = client.post("/toy/say", json={"model": "no-such-model", "say": "hi"})
        assert missing.status_code == 404 and "no-such-model" in missing.json()["toy_error"]
    assert registry.engines["tiny-chat"].calls[0]["messages"] == [{"role": "user", "content": "hello toy world"}]
