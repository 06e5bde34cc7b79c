"""v1/v2 inference routes and auth on the local platform, with engine doubles."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from platform_doubles import FakeRegistry
from platform_helpers import CREDS, Signer, bearer, client_for, token

from qfnb.local.server.serving.lane import PRIORITY_HEADER
from qfnb.protocol.platform.daemon import MODEL_HEADER
from qfnb.protocol.wires.codec.sse import SSEDecoder
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX

CHAT = MODEL_API_PREFIX + "/chat/"
MSG = [{"role": "user", "content": "hello there"}]


def test_oauth_token_and_invalid_client(client) -> None:
    good = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": CREDS.api_key,
                                                  "client_secret": CREDS.secret_key}, json={})
    assert good.status_code == 200 and good.json()["expires_in"] == 2592000
    bad_id = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": "x",
                                                    "client_secret": CREDS.secret_key})
    assert bad_id.json() == {"error": "invalid_client", "error_description": "unknown client id"}
    bad_sk = client.post("/oauth/2.0/token", params={"grant_type": "client_credentials", "client_id": CREDS.api_key,
                                                    "client_secret": "nope"})
    assert bad_sk.json()["error_description"] == "Client authentication failed"
    assert "nope" not in bad_sk.text


def test_chat_with_token(client) -> None:
    body = client.post(CHAT + "tiny-chat", params={"access_token": token(client)},
                       json={"messages": MSG, "system": "be brief"}).json()
    assert body["result"] == "tiny-chat: hello there"
    assert body["object"] == "chat.completion" and body["id"].startswith("as-")
    assert body["usage"]["completion_tokens"] == 3 and body["usage"]["total_tokens"] == 5
    engine = client.app.state.platform.registry.engines["tiny-chat"]
    assert engine.calls[-1]["system"] == "be brief"


def test_model_names_are_case_insensitive(client) -> None:
    body = client.post(CHAT + "Tiny-CHAT", params={"access_token": token(client)}, json={"messages": MSG}).json()
    assert body["result"].startswith("tiny-chat:")


def test_bad_and_missing_and_expired_tokens(client) -> None:
    assert client.post(CHAT + "tiny-chat", params={"access_token": "24.bogus"},
                       json={"messages": MSG}).json()["error_code"] == 110
    resp = client.post(CHAT + "tiny-chat", json={"messages": MSG})
    assert resp.status_code == 200 and resp.json()["error_code"] == 110
    store = client.app.state.platform.store
    store.add_token(client.app.state.auth._hash("24.old"), CREDS.api_key, time.time() - 60)
    assert client.post(CHAT + "tiny-chat", params={"access_token": "24.old"},
                       json={"messages": MSG}).json()["error_code"] == 111


def test_iam_signed_inference(client) -> None:
    ok = client.post(CHAT + "tiny-chat", json={"messages": MSG}, auth=Signer())
    assert ok.json()["result"] == "tiny-chat: hello there"
    wrong = client.post(CHAT + "tiny-chat", json={"messages": MSG}, auth=Signer(sk="wrong"))
    assert wrong.status_code == 401
    assert wrong.headers["X-Bce-Error-Code"] == "SignatureDoesNotMatch"
    old = client.post(CHAT + "tiny-chat", json={"messages": MSG}, auth=Signer(when=1_000_000_000))
    assert old.status_code == 401 and old.headers["X-Bce-Error-Code"] == "RequestExpired"
    unknown = client.post(CHAT + "tiny-chat", json={"messages": MSG}, auth=Signer(ak="someone"))
    assert unknown.headers["X-Bce-Error-Code"] == "NotFound"


@pytest.mark.parametrize(("messages", "code", "field"), [
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], 336006, "messages"),
    ([{"role": "assistant", "content": "a"}], 336006, "messages[0].role"),
    ([{"role": "system", "content": "a"}, {"role": "user", "content": "b"}], 336006, "messages[0].role"),
    ([], 336006, "messages"),
])
def test_bad_messages_use_platform_codes(client, messages, code, field) -> None:
    body = client.post(CHAT + "tiny-chat", params={"access_token": token(client)},
                       json={"messages": messages}).json()
    assert body["error_code"] == code
    assert body["error_msg"].startswith(field)


def test_bad_params_and_json(client) -> None:
    tok = token(client)
    body = client.post(CHAT + "tiny-chat", params={"access_token": tok},
                       json={"messages": MSG, "temperature": 3}).json()
    assert body["error_code"] == 336003 and "temperature" in body["error_msg"]
    raw = client.post(CHAT + "tiny-chat", params={"access_token": tok}, content=b"{not json").json()
    assert raw["error_code"] == 336002


def test_unknown_model_lists_served(client) -> None:
    body = client.post(CHAT + "llama_2_7b", params={"access_token": token(client)}, json={"messages": MSG}).json()
    assert body["error_code"] == 336005
    assert "Tiny-Chat (/chat/tiny-chat)" in body["error_msg"] and "QFNB_MODEL_ALIASES" in body["error_msg"]


def test_alias_maps_cloud_name_and_the_answer_names_the_model_that_served_it(tmp_path: Path) -> None:
    with client_for(tmp_path, aliases={"ernie-lite-8k": "Tiny-Chat"}) as c:
        resp = c.post(CHAT + "ernie-lite-8k", params={"access_token": token(c)}, json={"messages": MSG})
        with c.stream("POST", CHAT + "ernie-lite-8k", params={"access_token": token(c)},
                      json={"messages": MSG, "stream": True}) as streamed:
            stream_model = streamed.headers.get(MODEL_HEADER)
        v2 = c.post("/v2/chat/completions", headers={"Authorization": "Bearer " + bearer(c)},
                    json={"model": "ernie-lite-8k", "messages": MSG})
    assert resp.json()["result"] == "tiny-chat: hello there"
    assert resp.headers[MODEL_HEADER] == stream_model == v2.headers[MODEL_HEADER] == "Tiny-Chat"


def test_v1_stream_format(client) -> None:
    with client.stream("POST", CHAT + "tiny-chat", params={"access_token": token(client)},
                       json={"messages": MSG, "stream": True}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = "".join(resp.iter_text())
    assert "[DONE]" not in text
    items = list(SSEDecoder().feed(text))
    chunks = [i.data for i in items]
    assert [c["sentence_id"] for c in chunks] == [0, 1, 2]
    assert [c["is_end"] for c in chunks] == [False, False, True]
    assert "".join(c["result"] for c in chunks) == "tiny-chat: hello there"
    assert chunks[-1]["finish_reason"] == "normal" and not any(c["is_truncated"] for c in chunks)


def test_stream_error_before_start_is_json(client) -> None:
    resp = client.post(CHAT + "nope", params={"access_token": token(client)}, json={"messages": MSG, "stream": True})
    assert resp.headers["content-type"].startswith("application/json") and resp.json()["error_code"] == 336005


def test_completion_and_embeddings(client) -> None:
    tok = token(client)
    comp = client.post(MODEL_API_PREFIX + "/completions/tiny-chat", params={"access_token": tok},
                       json={"prompt": "one two", "max_output_tokens": 2}).json()
    assert comp["object"] == "completion" and comp["result"] == "tiny-chat: one"
    assert comp["finish_reason"] == "length" and comp["is_truncated"] is True  # hit max_output_tokens
    streamed = client.post(MODEL_API_PREFIX + "/completions/tiny-chat", params={"access_token": tok},
                           json={"prompt": "one two", "max_output_tokens": 2, "stream": True}).text
    last = list(SSEDecoder().feed(streamed))[-1].data
    assert last["is_end"] is True and last["is_truncated"] is True and last["finish_reason"] == "length"
    emb = client.post(MODEL_API_PREFIX + "/embeddings/tiny-embed", params={"access_token": tok},
                      json={"input": ["ab", "abc"]}).json()
    assert [d["index"] for d in emb["data"]] == [0, 1] and emb["data"][1]["embedding"][0] == 3.0
    too_many = client.post(MODEL_API_PREFIX + "/embeddings/tiny-embed", params={"access_token": tok},
                           json={"input": ["a"] * 17}).json()
    assert too_many["error_code"] == 336003


def test_a_batchs_packed_embeddings_call_takes_up_to_2048_texts(client) -> None:
    """qfnb's batch (its lane) packs several v1 calls' texts into one; anything else keeps the cloud's 16."""
    url, tok, lane = MODEL_API_PREFIX + "/embeddings/tiny-embed", token(client), {PRIORITY_HEADER: "batch"}
    packed = client.post(url, params={"access_token": tok}, headers=lane, json={"input": ["ab", "abc"] * 20}).json()
    assert [d["index"] for d in packed["data"]] == list(range(40)) and packed["data"][39]["embedding"][0] == 3.0
    beyond = client.post(url, params={"access_token": tok}, headers=lane, json={"input": ["a"] * 2049}).json()
    assert beyond["error_code"] == 336003 and "at most 2048 texts" in beyond["error_msg"]
    alone = client.post(url, params={"access_token": tok}, json={"input": ["a"] * 17}).json()
    assert alone["error_code"] == 336003 and "at most 16 texts" in alone["error_msg"]


def test_text2image_without_model_is_a_clear_error(client) -> None:
    body = client.post(MODEL_API_PREFIX + "/text2image/sd_xl", params={"access_token": token(client)},
                       json={"prompt": "a cat"}).json()
    assert body["error_code"] == 336005 and "QFNB_TEXT2IMAGE_MODEL_DIR" in body["error_msg"]
    assert "data" not in body


def test_v2_chat_and_stream(client) -> None:
    headers = {"Authorization": "Bearer " + bearer(client)}
    body = client.post("/v2/chat/completions", headers=headers,
                       json={"model": "tiny-chat", "messages": [{"role": "system", "content": "s"}, *MSG]}).json()
    assert body["choices"][0]["message"]["content"] == "tiny-chat: hello there"
    assert client.app.state.platform.registry.engines["tiny-chat"].calls[-1]["system"] == "s"
    with client.stream("POST", "/v2/chat/completions", headers=headers,
                       json={"model": "Tiny-Chat", "messages": MSG, "stream": True,
                             "stream_options": {"include_usage": True}}) as resp:
        text = "".join(resp.iter_text())
    items = list(SSEDecoder().feed(text))
    assert items[-1].done
    deltas = [i.data["choices"][0]["delta"].get("content", "") for i in items[:-1] if i.data["choices"]]
    assert "".join(deltas) == "tiny-chat: hello there"
    # usage in a last chunk of its own, with no choices, as OpenAI sends it
    assert items[-2].data["choices"] == [] and items[-2].data["usage"]["completion_tokens"] == 3
    denied = client.post("/v2/chat/completions", headers={"Authorization": "Bearer nope"},
                         json={"model": "tiny-chat", "messages": MSG})
    assert denied.status_code == 401


def test_bearer_minting(client) -> None:
    minted = client.get("/v1/BCE-BEARER/token", params={"expireInSeconds": "100"}, auth=Signer()).json()
    assert minted["token"].startswith("bce-v3/") and minted["status"] == "enable"
    ok = client.post("/v2/chat/completions", headers={"Authorization": "Bearer " + minted["token"]},
                     json={"model": "tiny-chat", "messages": MSG})
    assert ok.status_code == 200


def test_service_list_advertises_models(client) -> None:
    resp = client.post("/wenxinworkshop/service/list", json={}, auth=Signer()).json()
    urls = {(e["name"], e["url"].rsplit("/", 2)[-2]) for e in resp["result"]["common"]}
    assert ("Tiny-Chat", "chat") in urls and ("Tiny-Embed", "embeddings") in urls
    assert all(e["url"].startswith("http://127.0.0.1:8123" + MODEL_API_PREFIX) for e in resp["result"]["common"])
    assert client.post("/wenxinworkshop/service/list", json={}).status_code == 403


def test_tokens_survive_restart(tmp_path: Path) -> None:
    with client_for(tmp_path) as c:
        tok = token(c)
    with client_for(tmp_path, FakeRegistry()) as c:
        body = c.post(CHAT + "tiny-chat", params={"access_token": tok}, json={"messages": MSG}).json()
    assert "result" in body, json.dumps(body)


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_too_long_is_a_json_error_even_when_streaming(client, stream: bool) -> None:
    resp = client.post(CHAT + "tiny-chat", params={"access_token": token(client)},
                       json={"messages": [{"role": "user", "content": "TOO LONG"}], "stream": stream})
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error_code"] == 336003 and "8-token context" in resp.json()["error_msg"]
    v2 = client.post("/v2/chat/completions", headers={"Authorization": "Bearer " + bearer(client)},
                     json={"model": "tiny-chat", "messages": [{"role": "user", "content": "TOO LONG"}],
                           "stream": stream})
    assert v2.status_code == 400 and v2.json()["error"]["code"] == "context_length_exceeded"


def test_seed_catalogue_names_are_served_out_of_the_box(client, caplog) -> None:
    """The official docs' names answer with the first local model of their type, with one notice
    per name naming it, and v2 responses carry the real model's name."""
    import logging

    from qfnb.local.domain.state import seed_names

    seed_names._noticed.clear()
    tok = token(client)
    with caplog.at_level(logging.INFO, logger="qfnb.local"):
        for endpoint in ("completions", "eb-instant", "completions_pro", "ernie_speed", "ernie-lite-8k",
                         "completions", "ernie-3.5-8k", "ernie-4.0-8k"):
            body = client.post(CHAT + endpoint, params={"access_token": tok}, json={"messages": MSG}).json()
            assert body["result"] == "tiny-chat: hello there", (endpoint, body)
        emb = client.post(MODEL_API_PREFIX + "/embeddings/embedding-v1", params={"access_token": tok},
                          json={"input": ["ab"]}).json()
        assert emb["data"][0]["embedding"][0] == 2.0
        for name in ("bge_large_zh", "bge_large_en"):
            assert "data" in client.post(MODEL_API_PREFIX + "/embeddings/" + name, params={"access_token": tok},
                                         json={"input": ["ab"]}).json()
    notices = [r.getMessage() for r in caplog.records if "is a cloud model" in r.getMessage()]
    assert any(n.startswith("ERNIE-Bot is a cloud model") and "Tiny-Chat" in n for n in notices)
    assert len([n for n in notices if n.startswith("ERNIE-Bot ")]) == 1  # once per process and name
    assert any("Embedding-V1" in n and "Tiny-Embed" in n for n in notices)
    v2 = client.post("/v2/chat/completions", headers={"Authorization": "Bearer " + bearer(client)},
                     json={"model": "ERNIE-Bot", "messages": MSG}).json()
    assert v2["model"] == "Tiny-Chat"


def test_user_aliases_win_over_the_seed_names(tmp_path: Path) -> None:
    with client_for(tmp_path, aliases={"ernie-bot": "Other-Chat"}) as c:
        body = c.post(CHAT + "completions", params={"access_token": token(c)}, json={"messages": MSG}).json()
    assert body["result"] == "other-chat: hello there"


def test_embeddings_answers_write_float32_vectors_in_their_shortest_decimals() -> None:
    import numpy as np

    from qfnb.local.server.serving.wire import VectorsJSON, vector_rows

    third = np.float32(1 / 3)
    body = VectorsJSON({"data": [{"embedding": v} for v in vector_rows([[0.1, 1 / 3], [-2.0, 1e-8]])]}).body
    assert body == b'{"data":[{"embedding":[0.1,0.33333334]},{"embedding":[-2.0,1e-8]}]}'
    assert np.float32(json.loads(body)["data"][0]["embedding"][1]) == third  # the engine's float32, read back
