"""JSON schemas on the real engine (Qwen2.5-Coder-0.5B behind the platform, the unmodified ``openai``
SDK): each valid schema is enforced (the answers validate with ``jsonschema`` and its format checker:
by the grammar, or checked and resampled, a final miss answered with a ``refusal``), an unsafe one
refused with a 400 naming the place; none gets a 5xx. The default run sends a few;
the fuzz (``slow``) sends what hypothesis draws."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from platform_helpers import CREDS, bearer
from starlette.testclient import TestClient

from qfnb.local.engines.llama.link.transport import SchemaNotCompiled, engine_error
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.local.engines.registry import EngineOptions, EngineRegistry
from qfnb.local.server.app import create_app
from qfnb.local.settings import Settings
from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.schema.accepted import check_schema

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
openai = pytest.importorskip("openai")

QWEN = "Qwen2.5-Coder-0.5B-Instruct"
#: the 2020-12 formats (a bare FormatChecker() checks "time" as draft 3's HH:MM:SS, with no offset)
CHECK = jsonschema.Draft202012Validator.FORMAT_CHECKER


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("schemas")
    registry = EngineRegistry(data, options=EngineOptions(slots=2))
    with TestClient(create_app(Settings(data_dir=data, credentials=CREDS), registry),
                    base_url="http://127.0.0.1:8123") as c:
        yield openai.OpenAI(base_url="http://127.0.0.1:8123/v1", api_key=bearer(c), http_client=c, max_retries=0)
    registry.close()


def _ask(sdk: Any, schema: dict[str, Any], prompt: str, max_tokens: int = 48) -> Any:
    return sdk.chat.completions.create(
        model=QWEN, temperature=0, max_tokens=max_tokens, messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


#: the unsafe and unresolvable schemas: each a 400 naming where, before the engine sees it
PROBE = [
    (_obj(x={"type": "string", "pattern": "^([a-z]{0,12}){0,12}$"}), "properties.x.pattern"),
    (_obj(x={"type": "string", "pattern": "^([a-z]{0,40}){0,40}$"}), "properties.x.pattern"),
    ({"$ref": "#/$defs/nowhere"}, "$ref"),
    ({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}, "$ref"),
    (_obj(v={"type": "string", "enum": [f"value_{i:08d}" for i in range(20_000)]}), "properties.v.enum"),
]


def test_the_unsafe_schemas_get_a_400_naming_the_keyword(sdk: Any) -> None:
    for schema, place in PROBE:
        with pytest.raises(openai.BadRequestError) as refused:
            _ask(sdk, schema, "Answer.", max_tokens=8)
        assert refused.value.body["param"] == f"response_format.json_schema.schema.{place}", refused.value.body


ENFORCED = [
    (_obj(code={"type": "string", "pattern": r"^[A-Z]{3}-[0-9]{4}$"}),
     "Invent a product code of three capital letters, a dash and four digits."),
    (_obj(rating={"type": "integer", "minimum": 1, "maximum": 5}, due={"type": "string", "format": "date"}),
     "Rate the movie Alien from 1 to 5 and give a due date for the review."),
    (_obj(day={"type": "string", "format": "date"}, at={"type": "string", "format": "date-time"}),
     "Write February 30, 2023 as the day, and April 31, 2023 at 10:00 UTC as the time."),  # no such days
    (_obj(label={"type": "string", "maxLength": 12}, confidence={"type": "number", "minimum": 0, "maximum": 1}),
     "Classify the sentiment of 'I love this phone!' with a confidence."),  # pydantic's Field(ge=0, le=1)
    (_obj(share={"type": "number", "exclusiveMinimum": -0.25, "maximum": 0.5}),
     "What share of 200 is 350? Answer with a number."),  # the model's own answer, 1.75, lies outside
    (_obj(city={"enum": ["Paris", "Oslo", "Lima"]}, tags={"type": "array", "items": {"type": "string",
                                                                                    "maxLength": 12},
                                                          "maxItems": 3}),
     "Pick a city and give up to three tags for it."),
]


def test_what_is_enforced_validates(sdk: Any) -> None:
    for schema, prompt in ENFORCED:
        answer = _ask(sdk, schema, prompt)
        assert answer.choices[0].finish_reason == "stop", answer
        assert answer.choices[0].message.refusal is None, answer
        jsonschema.validate(json.loads(answer.choices[0].message.content), schema, format_checker=CHECK)


def test_what_the_grammar_cannot_enforce_is_checked_on_the_answer(sdk: Any) -> None:
    # refused before as "not enforced": now the answer is checked, resampled, and a final miss is a refusal
    schema = _obj(phone={"type": "string", "pattern": r"^\d{3}-\d{4}$"})
    message = _ask(sdk, schema, "Invent a phone number of three digits, a dash and four digits.",
                   max_tokens=24).choices[0].message
    if message.refusal is None:
        jsonschema.validate(json.loads(message.content), schema, format_checker=CHECK)
    else:
        assert "does not fit the JSON schema" in message.refusal and "pattern at phone" in message.refusal


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city", "strict": True,
    "parameters": _obj(city={"enum": ["Paris", "Oslo", "Lima"]})}}


def test_a_strict_tool_under_auto_is_enforced(sdk: Any) -> None:
    # the probe's case: the 0.5B model names a city outside the enum and adds a property of its own
    for city in ("Rome", "Berlin"):
        answer = sdk.chat.completions.create(model=QWEN, temperature=0, max_tokens=40, tools=[WEATHER],
                                             tool_choice="auto", messages=[
                                                 {"role": "user", "content": f"Weather in {city}, in Celsius? "
                                                  "Call the tool with the city and the units."}])
        for call in answer.choices[0].message.tool_calls or ():
            jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"],
                                format_checker=CHECK)


def test_a_schema_the_engine_cannot_compile_is_a_400_not_a_503() -> None:
    refused = engine_error("m", 400, b'{"error": {"code": 400, "message": "JSON schema conversion failed: '
                            b'x", "type": "invalid_request_error"}}')
    assert isinstance(refused, SchemaNotCompiled) and isinstance(refused, ValueError)  # a CannotServe: a 400


# ---- the fuzz --------------------------------------------------------------------------------------

_field = st.one_of(
    st.just({"type": "integer"}), st.just({"type": "boolean"}), st.just({"type": "string", "maxLength": 16}),
    st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
              st.integers(-50, 50), st.integers(0, 20)),
    st.sampled_from([{"type": "string", "pattern": p} for p in (
        r"^[A-Z][a-z]{2,8}$", r"^[0-9]{2}:[0-9]{2}$", r"^(red|green|blue)$", r"^[a-f0-9]{6}$", r"^\d+$",
        r"^[a-z]+@[a-z]+\.com$", r"^.{3}$")]),
    st.sampled_from([{"type": "string", "format": f} for f in ("date", "time", "date-time", "uuid", "email",
                                                                "hostname")]),
    st.lists(st.text("abcdefgh", min_size=1, max_size=6), min_size=1, max_size=5, unique=True).map(
        lambda vs: {"enum": vs}),
    st.just({"type": "number", "maximum": 1}),
    st.just({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "minItems": 1,
             "maxItems": 3}),
)
_schemas = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _field, min_size=1, max_size=3).map(
    lambda props: _obj(**props))


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(schema=_schemas)
def test_fuzz_each_schema_is_enforced_or_refused_by_name(sdk: Any, schema: dict[str, Any]) -> None:
    try:
        check_schema(schema, "s")
        expected = None
    except ProtocolError as exc:
        expected = "response_format.json_schema.schema" + exc.field[1:]
    try:
        answer = _ask(sdk, schema, "Fill in every field with a plausible value.", max_tokens=48)
    except openai.BadRequestError as exc:
        assert expected is not None and exc.body["param"] == expected, (exc.body, expected)
        return
    assert expected is None, f"accepted a schema the checks refuse at {expected}"
    if answer.choices[0].finish_reason == "stop" and answer.choices[0].message.refusal is None:
        jsonschema.validate(json.loads(answer.choices[0].message.content), schema, format_checker=CHECK)
