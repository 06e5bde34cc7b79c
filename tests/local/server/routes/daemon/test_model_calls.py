"""Model calls are counted at the platform (``modelCalls`` in ``GET /qfnb/status``): every request an
engine admits, whatever route it came by, and every fine-tune worker started."""

from __future__ import annotations

from platform_helpers import CREDS, console, token, wait_for

from qfnb.local.engines.call_state import calls
from qfnb.local.server.routes.daemon.control import routes as control_routes
from qfnb.local.server.routes.daemon.control import status
from qfnb.protocol.platform.daemon import CONTROL_HEADER, STATUS_ROUTE, DaemonStatus
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX, Console, V2Action

MSG = [{"role": "user", "content": "hello there"}]


def _delta(before: dict[str, int]) -> dict[str, int]:
    now = calls.snapshot()
    return {k: now.get(k, 0) - before.get(k, 0) for k in now if now.get(k, 0) != before.get(k, 0)}


def test_each_inference_request_is_one_call_of_its_model(client) -> None:
    before = calls.snapshot()
    tok = token(client)
    for _ in range(3):
        assert client.post(MODEL_API_PREFIX + "/chat/tiny-chat", params={"access_token": tok},
                           json={"messages": MSG}).status_code == 200
    client.post(MODEL_API_PREFIX + "/embeddings/tiny-embed", params={"access_token": tok},
                json={"input": ["a", "b"]})
    counted = _delta(before)
    # keyed by the engine's name (the doubles go by their class names)
    assert sorted(counted.values()) == [1, 3], counted  # the embedding request is one call, whatever its texts
    bad = client.post(MODEL_API_PREFIX + "/chat/tiny-chat", params={"access_token": "24.bogus"},
                      json={"messages": MSG})
    assert bad.json()["error_code"] == 110 and _delta(before) == counted  # refused before a model: not a call


def test_the_status_route_reports_the_counts(client) -> None:
    tok = token(client)
    client.post(MODEL_API_PREFIX + "/chat/tiny-chat", params={"access_token": tok}, json={"messages": MSG})
    reported = status(client.app.state.platform, 0.0, "t")
    assert reported.model_calls == calls.snapshot() and reported.model_calls_total >= 1
    wire = reported.to_dict()
    assert DaemonStatus.from_dict(wire).model_calls == reported.model_calls
    assert any(r.path == STATUS_ROUTE for r in control_routes("tok", 0.0, "t", lambda: None))
    assert CONTROL_HEADER  # the route needs the control token (tested in test_daemon.py)


def test_a_fine_tune_run_counts_once(client) -> None:
    before = calls.snapshot()
    client.app.state.platform.objects.put("qfnb", "rows.jsonl", b'{"prompt": "q", "response": "a"}\n')
    job = console(client, Console.V2_FINETUNING, {"name": "j", "model": "Tiny-Chat"},
                  Action=V2Action.CREATE_JOB)["result"]
    task = console(client, Console.V2_FINETUNING, {
        "jobId": job["jobId"], "hyperParameterConfig": {"epoch": 1, "maxSteps": 2},
        "datasetConfig": {"versions": [{"versionBosUri": "bos:/qfnb/rows.jsonl"}]}},
        Action=V2Action.CREATE_TASK)["result"]

    def done() -> bool:
        detail = console(client, Console.V2_FINETUNING, {"taskId": task["taskId"]},
                         Action=V2Action.DESCRIBE_TASK)["result"]
        return detail["runStatus"] in ("Done", "Failed")

    wait_for(done, timeout=60)
    assert _delta(before).get(calls.FINE_TUNE) == 1
    assert CREDS.api_key not in str(calls.snapshot())
