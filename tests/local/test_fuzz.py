"""Property-based tests (hypothesis): the platform's HTTP routes never answer a 5xx or a
traceback to any JSON, and keep answering; the pure parsers of untrusted bytes (SSE decoding,
``Retry-After``, bce-auth-v1 canonicalisation, message validation) hold for any input.

Examples are bounded so the suite stays short; a failing example is shrunk and printed.
"""

from __future__ import annotations

import itertools
import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from platform_helpers import Signer, client_for, token

from qfnb._core.http.retry import parse_retry_after
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.codec.sse import SSEDecoder, encode_event
from qfnb.protocol.wires.openai.requests import V2ChatRequest
from qfnb.protocol.wires.qianfan.inference import ChatRequest
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX
from qfnb.protocol.wires.qianfan.signing import canonical_query, sign, verify

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
    st.text(max_size=12), kids, max_size=4), max_leaves=12)
# bodies shaped like the real ones, with any value in any field
FIELDS = ["messages", "model", "stream", "temperature", "top_p", "top_k", "penalty_score", "max_output_tokens",
          "max_tokens", "stop", "seed", "system", "prompt", "input", "stream_options", "name", "uri",
          "modelVersionId", "modelId", "datasetId", "taskId", "jobId", "id", "serviceId"]
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6) | json_values


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with client_for(tmp_path_factory.mktemp("fuzz")) as c:
        yield c


def _ok(resp: Any) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:500])
    assert "Traceback" not in resp.text and 'File "' not in resp.text


ROUTES = [
    ("chat", MODEL_API_PREFIX + "/chat/tiny-chat"),
    ("completions", MODEL_API_PREFIX + "/completions/tiny-chat"),
    ("embeddings", MODEL_API_PREFIX + "/embeddings/tiny-embed"),
    ("v1 console", "/wenxinworkshop/service/apply"),
    ("v1 console", "/wenxinworkshop/modelrepo/eval/create"),
    ("v1 console", "/wenxinworkshop/finetune/createTask"),
    ("v1 console", "/wenxinworkshop/dataset/create"),
]


@FUZZ
@given(body=bodies, route=st.sampled_from(ROUTES))
def test_v1_routes_never_5xx(client, body: Any, route: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    kind, path = route
    content = json.dumps(body, allow_nan=True)
    if kind == "v1 console":
        resp = client.post(path, content=content, auth=Signer())
    else:
        resp = client.post(path, params={"access_token": token(client)}, content=content)
    _ok(resp)


@FUZZ
@given(body=bodies, action=st.sampled_from(["CreateService", "CreateFineTuningTask", "DescribeFineTuningTask",
                                            "CreateDataset", "DescribeModel", "DescribeService", "CreateImportTask",
                                            "DescribeImportTask", "DescribeDatasetVersion", "PublishDatasetVersion"]))
def test_v2_routes_never_5xx(client, body: Any, action: str) -> None:  # type: ignore[no-untyped-def]
    datasets = ("CreateDataset", "CreateImportTask", "DescribeImportTask", "DescribeDatasetVersion",
                "PublishDatasetVersion")
    route = {"CreateService": "/v2/service", "DescribeService": "/v2/service", "DescribeModel": "/v2/model",
             **dict.fromkeys(datasets, "/v2/dataset")}.get(action, "/v2/finetuning")
    _ok(client.post(route, params={"Action": action}, content=json.dumps(body, allow_nan=True), auth=Signer()))


@FUZZ
@given(body=bodies)
def test_v2_chat_never_5xx(client, body: Any) -> None:  # type: ignore[no-untyped-def]
    bearer = client.get("/v1/BCE-BEARER/token", params={"expireInSeconds": 600}, auth=Signer()).json()["token"]
    _ok(client.post("/v2/chat/completions", headers={"Authorization": f"Bearer {bearer}"},
                    content=json.dumps(body, allow_nan=True)))


@FUZZ
@given(raw=st.binary(max_size=300),
       key=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=300))
def test_raw_bytes_and_odd_keys_never_5xx(client, raw: bytes, key: str) -> None:  # type: ignore[no-untyped-def]
    _ok(client.post(MODEL_API_PREFIX + "/chat/tiny-chat", params={"access_token": token(client)}, content=raw))
    _ok(client.put("/bos/bucket/" + key.replace("?", "").replace("#", ""), content=raw, auth=Signer()))


def test_the_server_still_answers_after_the_fuzzing(client) -> None:  # type: ignore[no-untyped-def]
    answer = client.post(MODEL_API_PREFIX + "/chat/tiny-chat", params={"access_token": token(client)},
                         json={"messages": [{"role": "user", "content": "still there?"}]}).json()
    assert answer["result"] == "tiny-chat: still there?"


# ---- the pure parsers ----------------------------------------------------------------------

events = st.lists(st.dictionaries(st.sampled_from(["result", "id", "n"]), st.text(max_size=20) | st.integers(),
                                  min_size=1, max_size=3), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(items=events, newline=st.sampled_from(["\n", "\r\n", "\r"]), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_sse_decoding_is_independent_of_chunking_and_line_endings(items: list[dict[str, Any]], newline: str,
                                                                   cuts: list[int]) -> None:
    text = "".join(encode_event(i).decode() for i in items).replace("\n", newline) + f"data: [DONE]{newline * 2}"
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    decoder = SSEDecoder()
    out = []
    for a, b in itertools.pairwise(bounds):
        out.extend(decoder.feed(text[a:b]))
    out.extend(decoder.close())
    assert [o.data for o in out if not o.done] == items and out[-1].done


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40) | st.none())
def test_retry_after_parsing_never_raises(value: str | None) -> None:
    got = parse_retry_after(value, now=0.0)
    assert got is None or got >= 0.0


@given(seconds=st.integers(0, 10**6))
def test_retry_after_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == float(seconds)


@settings(max_examples=150, deadline=None)
@given(params=st.dictionaries(st.text(string.printable + "中文", max_size=10), st.text(max_size=10), max_size=5),
       path=st.text(string.ascii_letters + string.digits + "/-_.~%中", min_size=1, max_size=30))
def test_signing_canonicalisation_verifies_what_it_signs(params: dict[str, str], path: str) -> None:
    path = "/" + path.lstrip("/")
    headers = {"host": "127.0.0.1:8866", "x-bce-date": "2026-11-22T10:00:00Z"}
    auth = sign("POST", path, params, headers, "ak", "sk", "2026-11-22T10:00:00Z")
    verify("POST", path, params, {**headers, "authorization": auth}, "sk", check_expiry=False)
    assert canonical_query(params) == canonical_query(dict(reversed(list(params.items()))))


@settings(max_examples=200, deadline=None)
@given(messages=json_values)
def test_message_validation_accepts_or_names_the_field(messages: Any) -> None:
    for model, extra in ((ChatRequest, {}), (V2ChatRequest, {"model": "m"})):
        try:
            model.model_validate({"messages": messages, **extra})
        except ProtocolError as exc:
            assert exc.field.startswith("messages")
        except Exception as exc:  # pydantic's own errors must name the field too
            assert "messages" in str(exc)


def test_fuzz_data_dir_stays_private(client) -> None:  # type: ignore[no-untyped-def]
    root = Path(client.app.state.platform.settings.data_dir)
    assert root.stat().st_mode & 0o077 == 0
