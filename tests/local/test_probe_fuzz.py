"""Issue 26 (item 3): a route-table fuzz test over EVERY route of the app (read from the app's own
route table, so a new route is fuzzed too), with bodies shaped like the real ones: no 5xx and no
exception text, on a healthy disk and on a full one (an injected ``ENOSPC`` / SQLite "disk is
full", where the only 5xx allowed is the routes' own 507 "storage full")."""

from __future__ import annotations

import contextlib
import errno
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from platform_helpers import Signer, bearer, client_for, token

from qfnb.local.domain.state.datasets import ObjectStore
from qfnb.local.domain.state.store import Store
from qfnb.local.server.routes.platform import console as routes_console
from qfnb.local.server.routes.platform import v2 as routes_v2
from qfnb.protocol.wires.qianfan import batch
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX, Console, V2Action

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.sampled_from([0, -1, 1, 2**63, 2**31, 1001, "x", "", "1", "\ud800"]),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.text(max_size=8), kids, max_size=3), max_leaves=8)
FIELDS = ["maxKeys", "marker", "pageReverse", "name", "datasetName", "datasetId", "versionId", "taskId", "jobId",
          "modelId", "modelSetId", "modelVersionId", "serviceId", "files", "trainset", "trainConfig",
          "hyperParameterConfig", "datasetConfig", "messages", "model", "stream", "max_output_tokens", "seed",
          "input", "prompt", "uri", "urlSuffix", "dataFormat", "importFrom", "exportTo", "isNewModel", "versionMeta",
          "tools", "tool_choice", "response_format", "functions", "n", "logprobs", "top_logprobs", "query",
          "documents", "top_n", "stop", "temperature"]
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=5)


def _every_route() -> list[tuple[str, str, dict[str, str]]]:
    """``(kind, path, params)`` for each route of the app."""
    out: list[tuple[str, str, dict[str, str]]] = []
    v1 = [*routes_console.HANDLERS, Console.SERVICE_LIST, Console.SERVICE_DETAIL, Console.DATASET_EXPORT_RECORD]
    out += [("v1", str(p), {}) for p in v1]
    v2 = [*routes_v2.HANDLERS, (Console.V2_SERVICE, V2Action.DESCRIBE_SERVICE),
          (Console.V2_SERVICE, V2Action.DESCRIBE_SERVICES)]
    out += [("v2", str(p), {"Action": str(a)}) for p, a in v2]
    # the cloud-only calls: one sentence saying so (v2 prompt calls, and any other v1 console path)
    out += [("v2", str(p), {"Action": "DescribePromptTemplates"}) for p in (Console.V2_PROMPT_TEMPLATES,
                                                                           Console.V2_PROMPT_LABELS)]
    out += [("v1", "/wenxinworkshop/etl/create", {}), ("v1", "/wenxinworkshop/no/such/call", {})]
    out += [("infer", MODEL_API_PREFIX + f"/{t}/{e}", {}) for t, e in (
        ("chat", "tiny-chat"), ("completions", "tiny-chat"), ("embeddings", "tiny-embed"), ("text2image", "x"),
        ("plugin", "p"), ("nope", "x"))]
    out += [("v2", batch.ROUTE, {"Action": a}) for a in (batch.CREATE, batch.DESCRIBE, batch.STOP, batch.DESCRIBE_ALL)]
    out += [("openai", p, {}) for p in (batch.FILES, batch.FILES + "/file-x", batch.FILES + "/file-x/content",
                                        batch.BATCHES, batch.BATCHES + "/batch-x", batch.BATCHES + "/batch-x/cancel",
                                        "/v2/models", "/v2/models/tiny-chat")]
    # the OpenAI API under /v1 and /v2 alike: its POSTs (bearer) and its GETs
    out += [("v2chat", f"{v}/{name}", {}) for v in ("/v1", "/v2") for name in (
        "chat/completions", "completions", "embeddings", "rerank", "rerankers")]
    out += [("openai", p, {}) for p in ("/v1/models", "/v1/models/tiny-chat", "/v2/files", "/v2/files/file-x",
                                        "/v2/files/file-x/content", "/v2/batches", "/v2/batches/batch-x",
                                        "/v2/batches/batch-x/cancel")]
    out += [("infer", MODEL_API_PREFIX + "/reranker/tiny-embed", {})]
    # the Responses API (/v1 and /v2) and Anthropic's Messages API: their POSTs (bearer) and GETs
    out += [("v2chat", p, {}) for p in ("/v1/responses", "/v2/responses", "/v1/messages", "/v1/messages/count_tokens")]
    out += [("openai", f"{v}/responses/resp-x{tail}", {}) for v in ("/v1", "/v2") for tail in (
        "", "/input_items", "/cancel")] + [("openai", f"{v}/responses", {}) for v in ("/v1", "/v2")]
    out += [("oauth", "/oauth/2.0/token", {}),
            ("bearer", "/v1/BCE-BEARER/token", {}), ("bos", "/bos/bucket/key.jsonl", {}),
            ("boslist", "/bos/bucket", {}), ("health", "/healthz", {}), ("openai", "/metrics", {})]
    # OpenAI's fine-tuning jobs (/v1 and /v2): their POSTs (bearer, JSON) and GETs
    out += [("v2chat", f"{v}/fine_tuning/{name}", {}) for v in ("/v1", "/v2") for name in (
        "jobs", "jobs/ftjob-x/cancel", "jobs/ftjob-x/pause", "jobs/ftjob-x/resume", "answer_logprobs")]
    out += [("openai", f"{v}/fine_tuning/{name}", {}) for v in ("/v1", "/v2") for name in (
        "jobs", "jobs/ftjob-x", "jobs/ftjob-x/events", "jobs/ftjob-x/checkpoints", "checkpoints/x/permissions")]
    # OpenAI's stored chat completions (store: true): read, update, delete, and their messages
    out += [("openai", f"{v}/chat/completions/chatcmpl-x{tail}", {}) for v in ("/v1", "/v2")
            for tail in ("", "/messages")]
    return out


ROUTES = _every_route()


def test_the_table_covers_every_route_of_the_app(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        paths = {getattr(r, "path", "") for r in client.app.routes}  # type: ignore[attr-defined]
    covered = {p for _, p, _ in ROUTES} | {"/rpc/2.0/ai_custom/v1/wenxinworkshop/{api_type}/{endpoint:path}",
                                          "/bos/{bucket}", "/bos/{bucket}/{key:path}", batch.FILES + "/{file_id}",
                                          batch.FILES + "/{file_id}/content", batch.BATCHES + "/{batch_id}",
                                          batch.BATCHES + "/{batch_id}/cancel", "/v2/models/{model_id:path}",
                                          "/wenxinworkshop/{rest:path}", "/v1/models/{model_id:path}",
                                          "/v2/files/{file_id}", "/v2/files/{file_id}/content",
                                          "/v2/batches/{batch_id}", "/v2/batches/{batch_id}/cancel",
                                          batch.FILES + "/{rest:path}", batch.BATCHES + "/{rest:path}",
                                          "/v2/files/{rest:path}", "/v2/batches/{rest:path}"} | {
        f"{v}/responses/{{response_id}}{tail}" for v in ("/v1", "/v2") for tail in ("", "/input_items", "/cancel")} | {
        f"{v}/chat/completions/{{completion_id}}{tail}" for v in ("/v1", "/v2") for tail in ("", "/messages")} | {
        f"{v}/fine_tuning/{name}" for v in ("/v1", "/v2") for name in (
            "jobs/{job_id}", "jobs/{job_id}/cancel", "jobs/{job_id}/events", "jobs/{job_id}/checkpoints",
            "jobs/{job_id}/pause", "jobs/{job_id}/resume", "checkpoints/{rest:path}")}
    assert paths - covered <= {p for p in paths if p.startswith("/qfnb/")}, paths - covered


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with client_for(tmp_path_factory.mktemp("probe-fuzz")) as c:
        c.oauth, c.bearer = token(c), bearer(c)  # type: ignore[attr-defined]
        yield c


def _query(value: Any, size: int) -> str:
    """A generated value as a query parameter: a URL cannot carry a lone surrogate (no client can
    send one), so those become U+FFFD; every other character goes as generated."""
    return str(value)[:size].encode("utf-8", "replace").decode("utf-8")


def _send(client: Any, kind: str, path: str, params: dict[str, str], body: Any) -> Any:
    content = json.dumps(body, allow_nan=True)
    if kind in ("v1", "v2"):
        return client.post(path, params=params, content=content, auth=Signer())
    if kind == "infer":
        return client.post(path, params={"access_token": client.oauth}, content=content)
    if kind == "v2chat":
        return client.post(path, headers={"Authorization": f"Bearer {client.bearer}"}, content=content)
    if kind == "openai":  # OpenAI-shaped routes: a JSON POST where the route takes one, else a GET
        auth = {"Authorization": f"Bearer {client.bearer}"}
        if path.endswith(("/cancel", "/batches", "/files")):
            return client.post(path, headers=auth, content=content)
        return client.get(path, headers=auth)
    if kind == "oauth":
        return client.post(path, params={"grant_type": "client_credentials", "client_id": "test-ak",
                                         "client_secret": "test-sk", **{k: _query(v, 20) for k, v in body.items()}})
    if kind == "bearer":
        return client.get(path, params={"expireInSeconds": _query(body.get("maxKeys", "600"), 30)}, auth=Signer())
    if kind == "bos":
        return client.put(path, content=content.encode(), auth=Signer())
    if kind == "boslist":  # ListObjects: the body's fields as its query (maxKeys, marker, ...)
        return client.get(path, params={k: _query(v, 40) for k, v in body.items()}, auth=Signer())
    return client.get(path)


def _check(resp: Any, *, full_disk: bool = False) -> None:
    allowed = (507, 503) if full_disk else ()
    assert resp.status_code < 500 or resp.status_code in allowed, (resp.status_code, resp.text[:300])
    text = resp.text
    for leak in ("Traceback", 'File "', "Error:", "OperationalError", "ValueError", "TypeError", "KeyError",
                 "No space left"):
        assert leak not in text, (leak, text[:300])


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_every_route_answers_any_body_without_a_5xx(client, route: tuple[str, str, dict[str, str]],
                                                    body: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    _check(_send(client, *route, body))


@contextlib.contextmanager
def _full_disk() -> Iterator[None]:
    def full(*_: Any, **__: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    async def no_space(*_: Any, **__: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:
        for name in ("insert", "update", "add_token"):
            mp.setattr(Store, name, full)
        mp.setattr(ObjectStore, "put_stream", no_space)
        yield


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_every_route_on_a_full_disk_says_storage_full_not_500(client, route: tuple[str, str, dict[str, str]],
                                                              body: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    with _full_disk():
        resp = _send(client, *route, body)
    _check(resp, full_disk=True)
    if resp.status_code >= 500:
        assert "storage full" in resp.text


def test_full_disk_on_the_writing_routes(client) -> None:  # type: ignore[no-untyped-def]
    """The routes that write answer storage full (a deterministic sweep besides the fuzzing)."""
    with _full_disk():
        for kind, path, params in ROUTES:
            body: dict[str, Any] = {"datasetName": "d", "name": "d", "dataType": 4, "projectType": 20,
                                    "templateType": 2000, "model": "tiny-chat", "messages": [{"role": "user",
                                                                                             "content": "hi"}]}
            resp = _send(client, kind, path, params, body)
            _check(resp, full_disk=True)
        health = client.get("/healthz").json()
    assert health["status"] == "degraded"
