"""The Responses and Messages routes against the platform's app with engine doubles (fast; the real
engine is in test_responses_real.py / test_anthropic_real.py): a chain whose follow-up carries the
stored turns, store false, input_items paging, delete, refusals in each API's error shape, and the
event streams as the real SDKs read them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.local_platform import ServedPlatform

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")


def test_a_chain_store_and_input_items(served: ServedPlatform) -> None:
    client: Any = openai.OpenAI(base_url=served.url + "/v2", api_key=served.bearer_token(), max_retries=0)
    first = client.responses.create(model="tiny-chat", instructions="be brief", input="hello there")
    assert first.output_text == "tiny-chat: hello there" and first.status == "completed"
    second = client.responses.create(model="tiny-chat", previous_response_id=first.id,
                                     input=[{"role": "user", "content": [{"type": "input_text", "text": "again"}]}])
    seen = served.registry.engines["tiny-chat"].calls[-1]["messages"]
    assert [m["content"] for m in seen] == ["hello there", "tiny-chat: hello there", "again"]  # no instructions
    assert client.responses.retrieve(second.id).previous_response_id == first.id
    items = client.responses.input_items.list(second.id, order="asc", limit=1)
    assert items.data[0].content[0].text == "again" and items.has_more is False
    unstored = client.responses.create(model="tiny-chat", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.BadRequestError) as broken:
        client.responses.create(model="tiny-chat", previous_response_id=second.id, input="more")
    assert broken.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as tools:
        client.responses.create(model="tiny-chat", input="x", tools=[{"type": "web_search"}])
    assert tools.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.BadRequestError):  # cancel: only a response being answered
        client.responses.cancel(second.id)


def test_the_stream_events(served: ServedPlatform) -> None:
    client: Any = openai.OpenAI(base_url=served.url + "/v1", api_key=served.bearer_token(), max_retries=0)
    with client.responses.stream(model="tiny-chat", input="hello there") as stream:
        final = stream.get_final_response()
    assert final.output_text == "tiny-chat: hello there"
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_messages_and_their_errors(served: ServedPlatform) -> None:
    client: Any = anthropic.Anthropic(base_url=served.url, api_key=served.bearer_token(), max_retries=0)
    message = client.messages.create(model="tiny-chat", max_tokens=20, system="s",
                                     messages=[{"role": "user", "content": "hello there"}])
    assert message.content[0].text == "tiny-chat: hello there" and message.stop_reason == "end_turn"
    with client.messages.stream(model="tiny-chat", max_tokens=20,
                                messages=[{"role": "user", "content": "hello there"}]) as stream:
        assert "".join(stream.text_stream) == "tiny-chat: hello there"
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="tiny-chat", max_tokens=20, thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["error"]["type"] == "invalid_request_error" and "thinking" in bad.value.body["error"][
        "message"]
    resp = httpx.post(served.url + "/v1/messages/nothing", headers={"x-api-key": served.bearer_token()}, json={})
    assert resp.status_code == 404 and resp.json()["type"] == "error"


@pytest.mark.parametrize(("sent", "named"), [
    ({"max_tokens": 1_000_000_000}, "max_tokens: must be in [1, 65536]"),  # Messages' own field, not OpenAI's
    ({"max_tokens": 20, "temperature": 1.5}, "temperature: must be in [0.0, 1.0]"),  # Anthropic's range: 0-1
    ({"max_tokens": 5000}, "max_tokens: must be at most 4096 on the local platform"),
])
def test_messages_ranges_are_anthropics(served: ServedPlatform, sent: dict[str, Any], named: str) -> None:
    resp = httpx.post(served.url + "/v1/messages", headers={"x-api-key": served.bearer_token()}, json={
        "model": "tiny-chat", "messages": [{"role": "user", "content": "x"}], **sent})
    assert resp.status_code == 400 and resp.json()["type"] == "error", resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error" and named in resp.json()["error"]["message"]


def test_responses_ranges_name_responses_fields(served: ServedPlatform) -> None:
    client: Any = openai.OpenAI(base_url=served.url + "/v1", api_key=served.bearer_token(), max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="tiny-chat", input="x", max_output_tokens=1_000_000_000)
    assert bad.value.body["param"] == "max_output_tokens" and "65536" in bad.value.body["message"]
    answer = client.responses.create(model="tiny-chat", input="hello there", temperature=1.5)  # OpenAI's 0-2
    assert answer.output_text == "tiny-chat: hello there" and answer.temperature == 1.5


def test_stored_responses_listed_by_metadata(served: ServedPlatform) -> None:
    token = served.bearer_token()
    client: Any = openai.OpenAI(base_url=served.url + "/v1", api_key=token, max_retries=0)
    made = [client.responses.create(model="tiny-chat", input=f"turn {i}", metadata={"qfnb_session": "trip"})
            for i in range(3)]
    client.responses.create(model="tiny-chat", input="elsewhere", metadata={"qfnb_session": "other"})
    auth = {"Authorization": f"Bearer {token}"}

    def listed(**params: Any) -> Any:
        return httpx.get(served.url + "/v2/responses", params=params, headers=auth)

    page = listed(**{"metadata[qfnb_session]": "trip", "order": "asc", "limit": 2}).json()
    assert [r["id"] for r in page["data"]] == [m.id for m in made[:2]] and page["has_more"] is True
    rest = listed(**{"metadata[qfnb_session]": "trip", "order": "asc", "after": page["last_id"]}).json()
    assert [r["id"] for r in rest["data"]] == [made[2].id] and rest["has_more"] is False
    assert listed(**{"metadata[qfnb_session]": "trip"}).json()["data"][0]["id"] == made[2].id  # newest first
    assert listed(**{"metadata[qfnb_session]": "nobody"}).json()["data"] == []
    for bad, param in (({"order": "up", "metadata[a]": "b"}, "order"), ({"session": "trip"}, "session"),
                       ({}, "metadata")):
        resp = listed(**bad)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param
    assert httpx.get(served.url + "/v1/responses", params={"metadata[a]": "b"}).status_code == 401
