"""An added text2image engine (``qfnb models add --engine URL --role text2image``) draws for the platform's
``/text2image/{name}`` route, over real HTTP, against an image-engine double that returns a real PNG."""

from __future__ import annotations

import base64
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.server.app import create_app
from qfnb.local.server.routes.daemon import control
from qfnb.local.settings import Credentials, Settings
from qfnb.protocol.platform.daemon import CONTROL_HEADER, MODELS_ROUTE
from qfnb.protocol.wires.qianfan.signing import bce_date, sign
from tests.fakes.cloud import serve

CREDS = Credentials(api_key="test-ak", secret_key="test-sk", access_key="test-access", iam_secret_key="test-secret")


def _iam_signed(request: Any) -> Any:
    """bce-auth-v1 signing of a console request (what the SDKs do)."""
    ts = bce_date()
    headers = {"host": request.headers["host"], "content-type": "application/json", "x-bce-date": ts}
    request.headers.update({"x-bce-date": ts, "content-type": "application/json"})
    request.headers["authorization"] = sign(request.method, request.url.path, dict(request.url.params), headers,
                                            CREDS.access_key, CREDS.iam_secret_key, ts, 300)
    return request


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour (zlib + struct, as the format says)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture()
def image_engine() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def generations(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        w, h = (int(x) for x in body["size"].split("x"))
        image = base64.b64encode(png(w, h, (200, 30, 30))).decode()
        return JSONResponse({"created": int(time.time()), "data": [{"b64_json": image}] * int(body["n"])})

    with serve(Starlette(routes=[Route("/v1/images/generations", generations, methods=["POST"])])) as url:
        yield url + "/v1", seen


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    settings = Settings(data_dir=tmp_path / "data", credentials=CREDS, worker_command=(sys.executable, "-c", "0"))
    app = create_app(settings, EngineRegistry(settings.data_dir, options=EngineOptions(slots=2)),
                     extra_routes=control.routes("tok", time.time(), "test", lambda: None))
    with TestClient(app) as c:
        yield c


def test_an_added_image_engine_draws_with_the_platforms_wire_shapes(client: TestClient, image_engine: Any) -> None:
    url, seen = image_engine
    added = client.post(MODELS_ROUTE, headers={CONTROL_HEADER: "tok"},
                        json={"engine": url, "roles": ["text2image"], "name": "my-sd"})
    assert added.status_code == 200 and added.json()["kind"] == "engine"
    token = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": CREDS.api_key,
                                                    "client_secret": CREDS.secret_key}, json={}).json()["access_token"]
    listed = client.post("/wenxinworkshop/service/list", json={}, auth=_iam_signed)
    resp = client.post("/rpc/2.0/ai_custom/v1/wenxinworkshop/text2image/my_sd", params={"access_token": token},
                       json={"prompt": "a red square", "size": "64x48", "n": 2, "steps": 5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "image" and [d["index"] for d in body["data"]] == [1, 2]
    raw = base64.b64decode(body["data"][0]["b64_image"])
    assert raw.startswith(b"\x89PNG\r\n\x1a\n") and struct.unpack(">II", raw[16:24]) == (64, 48)
    assert seen == [{"model": "my-sd", "prompt": "a red square", "n": 2, "size": "64x48",
                     "response_format": "b64_json", "steps": 5}]
    common = listed.json()["result"]["common"]
    assert {"name": "my-sd", "apiType": "text2image"}.items() <= next(e for e in common if e["name"] == "my-sd").items()


def test_an_image_engine_that_answers_no_image_is_a_clear_error(client: TestClient, tmp_path: Path) -> None:
    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({"data": [{"b64_json": base64.b64encode(b"not an image").decode()}]})

    with serve(Starlette(routes=[Route("/v1/images/generations", broken, methods=["POST"])])) as url:
        client.post(MODELS_ROUTE, headers={CONTROL_HEADER: "tok"},
                    json={"engine": url + "/v1", "roles": ["text2image"], "name": "bad-sd"})
        token = client.post("/oauth/2.0/token", json={}, params={
            "grant_type": "client_credentials", "client_id": CREDS.api_key,
            "client_secret": CREDS.secret_key}).json()["access_token"]
        resp = client.post("/rpc/2.0/ai_custom/v1/wenxinworkshop/text2image/bad_sd", params={"access_token": token},
                           json={"prompt": "x"})
    assert resp.json()["error_msg"].endswith("gave no usable image: image 1 is not a PNG, JPEG, WebP or GIF")


def test_qfnb_text2image_draws_through_the_added_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        image_engine: Any) -> None:
    from qfnb._core.http import client as client_mod
    from qfnb.resources import Text2Image

    url, seen = image_engine
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    settings = Settings(data_dir=tmp_path / "data", credentials=CREDS, worker_command=(sys.executable, "-c", "0"))
    app = create_app(settings, EngineRegistry(settings.data_dir, options=EngineOptions(slots=2)))
    with serve(app, lifespan="on") as base:
        from qfnb.local.engines.store.model_store import ModelStore

        ModelStore().add(None, "my-sd", roles=("text2image",), engine_url=url)
        for name, value in {"QIANFAN_BASE_URL": base, "QIANFAN_CONSOLE_API_BASE_URL": base,
                            "QIANFAN_IAM_BASE_URL": base, "QIANFAN_AK": CREDS.api_key,
                            "QIANFAN_SK": CREDS.secret_key, "QIANFAN_ACCESS_KEY": CREDS.access_key,
                            "QIANFAN_SECRET_KEY": CREDS.iam_secret_key}.items():
            monkeypatch.setenv(name, value)
        client_mod._CLIENTS.clear()
        resp = Text2Image(endpoint="my_sd").do(prompt="a red square", size="32x32")
        by_name = Text2Image(model="my-sd").do(prompt="a red square", size="16x16")
    assert struct.unpack(">II", base64.b64decode(by_name["body"]["data"][0]["b64_image"])[16:24]) == (16, 16)
    raw = base64.b64decode(resp["body"]["data"][0]["b64_image"])
    assert raw.startswith(b"\x89PNG") and struct.unpack(">II", raw[16:24]) == (32, 32)
    assert [(s["model"], s["size"]) for s in seen] == [("my-sd", "32x32"), ("my-sd", "16x16")]
