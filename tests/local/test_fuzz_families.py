"""Issue 34 §5: a property-based fuzz test per route family, each asserting its own error shape
besides no 5xx: OpenAI's files and batches answer OpenAI's error object naming the ``param``,
Qianfan's ``/v2/batchinference`` its ``{requestId, code, message}``. The daemon's memory stays
bounded under hostile uploads (a form of many large fields is refused, not held)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from platform_helpers import Signer, bearer, client_for

from qfnb.protocol.wires.qianfan import batch

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.sampled_from([0, -1, 1, 2**63, 1001, "x", "", "24h", "/v1/chat/completions", "Done", "\ud800"]),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.text(max_size=70), kids, max_size=18), max_leaves=20)
LEAKS = ("Traceback", 'File "', "Error:", "ValueError", "TypeError", "KeyError", "AttributeError")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with client_for(tmp_path_factory.mktemp("fuzz-families")) as c:
        c.headers["Authorization"] = f"Bearer {bearer(c)}"
        row = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
               "body": {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}]}}
        chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
        c.files_ = {p: c.post(batch.FILES, data={"purpose": p}, files={"file": ("in.jsonl", json.dumps(line))}).json()
                    ["id"] for p, line in (("batch", row), ("fine-tune", chat))}  # each checked as its purpose
        yield c


def _no_5xx(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    for leak in LEAKS:
        assert leak not in resp.text, (leak, resp.text[:300])


def _openai_shape(resp: httpx.Response) -> None:
    _no_5xx(resp)
    if resp.status_code < 400:
        return
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
    if error["param"] is not None:  # the sentence names the field it is about
        assert error["message"].startswith(str(error["param"]).split(".")[0]), error


def _qianfan_shape(resp: httpx.Response) -> None:
    _no_5xx(resp)
    if resp.status_code >= 400:
        body = resp.json()
        assert set(body) == {"requestId", "code", "message"} and body["message"], body


BATCH_FIELDS = ("input_file_id", "endpoint", "completion_window", "metadata")


@FUZZ
@given(body=st.dictionaries(st.sampled_from(BATCH_FIELDS), values, max_size=4),
       file=st.sampled_from(["batch", "fine-tune", None]), window=st.booleans())
def test_openai_batch_create(client: Any, body: dict[str, Any], file: str | None, window: bool) -> None:
    if file is not None:
        body = {"endpoint": "/v1/chat/completions", **body, "input_file_id": client.files_[file]}
    if window:
        body.setdefault("completion_window", "24h")
    resp = client.post(batch.BATCHES, content=json.dumps(body, allow_nan=True))
    _openai_shape(resp)
    if resp.status_code == 200:  # what was accepted is within OpenAI's limits
        made = resp.json()
        metadata = made["metadata"] or {}
        assert len(metadata) <= 16 and all(len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())
        assert file == "batch"


@FUZZ
@given(limit=st.one_of(st.none(), st.text(max_size=25), st.integers(-5, 200).map(str)), after=st.text(max_size=30),
       target=st.text(max_size=40), verb=st.sampled_from(["list", "get", "cancel", "file", "content", "delete"]))
def test_openai_batch_and_file_reads(client: Any, limit: str | None, after: str, target: str, verb: str) -> None:
    safe = quote(target.encode("utf-8", "replace").decode(), safe="") or "x"
    if verb == "list":
        params = {"after": after.encode("utf-8", "replace").decode()}
        if limit is not None:
            params["limit"] = limit.encode("utf-8", "replace").decode()
        resp = client.get(batch.BATCHES, params=params)
        if resp.status_code == 200:
            assert limit is None or 1 <= int(limit) <= 100
    elif verb == "get":
        resp = client.get(f"{batch.BATCHES}/{safe}")
    elif verb == "cancel":
        resp = client.post(f"{batch.BATCHES}/{safe}/cancel")
    elif verb == "file":
        resp = client.get(f"{batch.FILES}/{safe}")
    elif verb == "content":
        resp = client.get(f"{batch.FILES}/{safe}/content")
    else:
        resp = client.delete(f"{batch.FILES}/file-{safe}")
    _openai_shape(resp)


@FUZZ
@given(purpose=st.one_of(st.sampled_from(["batch", "fine-tune", "batch_output", ""]), st.text(max_size=20)),
       filename=st.text(max_size=200), extra=st.integers(0, 20), size=st.sampled_from([1, 1000, 70_000]))
def test_openai_file_upload(client: Any, purpose: str, filename: str, extra: int, size: int) -> None:
    clean = purpose.encode("utf-8", "replace").decode()
    data = {"purpose": clean, **{f"extra{i}": "v" * size for i in range(extra)}}
    name = filename.encode("utf-8", "replace").decode().replace('"', "'").replace("\r", "").replace("\n", "") or "f"
    resp = client.post(batch.FILES, data=data, files={"file": (name, b'{"custom_id": "a"}\n')})
    _openai_shape(resp)
    if resp.status_code == 200:
        stored = resp.json()["filename"]
        assert "/" not in stored and len(stored.encode()) <= 120 and stored not in ("", ".", "..")
        assert extra + 1 <= 16 and clean in ("batch", "fine-tune", "batch_output", "assistants", "user_data", "evals")


QIANFAN_FIELDS = ("name", "inputBosUri", "outputBosUri", "endpoint", "modelId", "inferenceParams",
                  "completion_window", "taskId", "maxKeys", "marker", "runStatus", "pageReverse", "datasetId",
                  "afsConfig", "description")


@FUZZ
@given(action=st.sampled_from([batch.CREATE, batch.DESCRIBE, batch.STOP, batch.DESCRIBE_ALL, "Nope"]),
       body=st.dictionaries(st.sampled_from(QIANFAN_FIELDS), values, max_size=6))
def test_qianfan_batch_actions(client: Any, action: str, body: dict[str, Any]) -> None:
    resp = client.post(batch.ROUTE, params={"Action": action}, content=json.dumps(body, allow_nan=True),
                       auth=Signer(), headers={"Authorization": ""})
    _qianfan_shape(resp)


def test_a_form_of_many_large_fields_is_refused_not_held(tmp_path: Path) -> None:
    """The issue's 7,800 fields of 65 KB held 539 MB. Now the form is refused at its 5th field
    (256 KiB of fields in all, 16 fields at most) and the daemon's traced memory stays under a
    MiB (the client streams the body, nothing is built whole)."""
    from tests.fakes.local_platform import served_platform

    boundary = "fuzzboundary"
    field = b"v" * 65_000

    def body() -> Iterator[bytes]:
        for i in range(400):  # 26 MB of fields: held whole before, refused at the 5th now
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n").encode() + field + b"\r\n"
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n"
               "{}\r\n" f"--{boundary}--\r\n").encode()

    with served_platform(tmp_path / "data") as served:
        token = served.bearer_token()
        tracemalloc.start()
        try:
            resp = httpx.post(served.url + batch.FILES, content=body(), timeout=60, headers={
                "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    _openai_shape(resp)
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["param"] == "f4" and "262144 bytes for all fields" in error["message"]
    print(f"peak traced memory over a 400-field, 26 MB form: {peak / 2**20:.1f} MiB")
    assert peak < 8 * 2**20, peak
