"""The request bodies of the newer wires, declared once: OpenAI's Responses API (``POST /responses``)
and Anthropic's Messages API (``POST /v1/messages``, ``/v1/messages/count_tokens``).

Each field gives its wire name, type, each wire's own range and the engine column (the
``qfnb.local.engines.ask.Sampling`` field it feeds); a required field's doc is what a body lacking
it is told it needs (``model is required: the name of a served chat model``). ``python tools/generate.py`` writes
``qfnb/protocol/wires/chat/bodies.py`` from here: the pydantic models (a request body refuses any other
field; a nested item keeps the keys clients add, such as ``id``, ``status`` or ``cache_control``),
and ``qfnb/protocol/wires/chat/ranges.py``'s tables of each wire: its ranges, engine names and required
fields. :mod:`qfnb.protocol.wires.responses.request` and :mod:`qfnb.protocol.wires.anthropic.messages` add
the validators; :mod:`qfnb.local.convert` turns a parsed body straight into the engine's ask.
"""

from __future__ import annotations

from spec.schema import REQUIRED, Field, Range, WireModel

_TOKENS = Range(1, 65_536, integer=True, hi_name="MAX_OUTPUT_TOKENS")
_MODEL = Field("model", "str", REQUIRED, doc="the name of a served chat model.")
_STREAM = Field("stream", "bool", "False", doc="an event stream instead of one object.")
_TEXT = Field("text", "str", REQUIRED)
_OPEN = "dict[str, Any] | None"

# ---------------------------------------------------------------------------- Responses API
RESPONSES_ITEMS = (
    WireModel("ResponsesMessage", "An input message item: ``content`` a string or OpenAI content parts.",
              (Field("type", 'Literal["message"]', '"message"'),
               Field("role", 'Literal["user", "assistant", "system", "developer"]', REQUIRED),
               Field("content", "str | list[dict[str, Any]]", REQUIRED)), extra="allow"),
    WireModel("ResponsesFunctionCall", "A function call the model made, given back in a conversation.",
              (Field("type", 'Literal["function_call"]', REQUIRED), Field("call_id", "str", REQUIRED),
               Field("name", "str", REQUIRED), Field("arguments", "str", REQUIRED)), extra="allow"),
    WireModel("ResponsesFunctionOutput", "A function's result, answering the call named by ``call_id``.",
              (Field("type", 'Literal["function_call_output"]', REQUIRED), Field("call_id", "str", REQUIRED),
               Field("output", "str | list[dict[str, Any]]", REQUIRED)), extra="allow"),
    WireModel("ResponsesTool", "A function tool (Responses' flat shape).",
              (Field("type", 'Literal["function"]', REQUIRED), Field("name", "str", REQUIRED),
               Field("description", "str | None"), Field("parameters", _OPEN),
               Field("strict", "bool", "True", doc="the Responses API's default: enforced.")), extra="allow"),
    WireModel("ResponsesNamedChoice", "``tool_choice`` naming one function.",
              (Field("type", 'Literal["function"]', REQUIRED), Field("name", "str", REQUIRED)), extra="allow"),
    WireModel("ResponsesFormat", "``text.format``: free text, any JSON object, or a JSON schema.",
              (Field("type", 'Literal["text", "json_object", "json_schema"]', REQUIRED),
               Field("name", "str | None"), Field("schema_", _OPEN, wire="schema"),
               Field("strict", "bool | None"), Field("description", "str | None")), extra="allow"),
    WireModel("ResponsesText", "``text``: the answer's format.",
              (Field("format", "ResponsesFormat | None"),), extra="allow"),
)

RESPONSES = WireModel("ResponsesFields", "Body of ``POST /responses``.", (
    _MODEL,
    Field("input", "str | list[ResponsesItem] | None", doc="a string or a list of input items."),
    Field("instructions", "str | None"), Field("previous_response_id", "str | None"),
    Field("store", "bool", "True"), _STREAM, Field("stream_options", _OPEN),
    Field("temperature", "float | None", range=Range(0.0, 2.0), engine="temperature"),
    Field("top_p", "float | None", range=Range(0.0, 1.0), engine="top_p"),
    Field("max_output_tokens", "int | None", range=_TOKENS, engine="max_tokens"),
    Field("tools", "list[ResponsesTool] | None"),
    Field("tool_choice", 'Literal["auto", "none", "required"] | ResponsesNamedChoice | None'),
    Field("parallel_tool_calls", "bool | None"), Field("text", "ResponsesText | None"),
    Field("metadata", "dict[str, str] | None"), Field("user", "str | None"), Field("truncation", "str | None"),
    Field("include", "list[str] | None"), Field("reasoning", _OPEN), Field("service_tier", "str | None"),
    Field("prompt_cache_key", "str | None"), Field("safety_identifier", "str | None"),
    Field("background", "bool | None"), Field("top_logprobs", "int | None"),
), extra="forbid")

# ---------------------------------------------------------------------------- Messages API
MESSAGES_ITEMS = (
    WireModel("AnthropicText", "A text content block.",
              (Field("type", 'Literal["text"]', REQUIRED), _TEXT), extra="allow"),
    WireModel("AnthropicToolUse", "An assistant's tool call.",
              (Field("type", 'Literal["tool_use"]', REQUIRED), Field("id", "str", REQUIRED),
               Field("name", "str", REQUIRED), Field("input", _OPEN)), extra="allow"),
    WireModel("AnthropicToolResult", "A user's tool result, answering ``tool_use_id``.",
              (Field("type", 'Literal["tool_result"]', REQUIRED), Field("tool_use_id", "str", REQUIRED),
               Field("content", "str | list[AnthropicText] | None"), Field("is_error", "bool | None")),
              extra="allow"),
    WireModel("AnthropicThinking", "Another model's thinking, given back in a history (not asked again).",
              (Field("type", 'Literal["thinking", "redacted_thinking"]', REQUIRED),), extra="allow"),
    WireModel("AnthropicMessage", "One turn: ``content`` a string or a list of content blocks.",
              (Field("role", 'Literal["user", "assistant"]', REQUIRED),
               Field("content", "str | list[AnthropicBlock]", REQUIRED)), extra="allow"),
    WireModel("AnthropicTool", "A client tool.",
              (Field("type", 'Literal["custom"]', '"custom"'), Field("name", "str", REQUIRED),
               Field("description", "str | None"), Field("input_schema", "dict[str, Any]", REQUIRED),
               Field("strict", "bool | None")), extra="allow"),
    WireModel("AnthropicToolChoice", "Which tool to call: ``auto``, ``any``, ``none``, or ``tool`` with ``name``.",
              (Field("type", 'Literal["auto", "any", "tool", "none"]', REQUIRED), Field("name", "str | None"),
               Field("disable_parallel_tool_use", "bool | None")), extra="allow"),
    WireModel("AnthropicFormat", "``output_config.format``: a JSON schema the answer follows.",
              (Field("type", 'Literal["json_schema"]', REQUIRED), Field("schema_", "dict[str, Any]", REQUIRED,
                                                                          wire="schema")), extra="allow"),
    WireModel("AnthropicOutputConfig", "``output_config``: the answer's format (no effort levels here).",
              (Field("format", "AnthropicFormat | None"), Field("effort", "Any")), extra="allow"),
)

#: the fields ``count_tokens`` takes: the prompt, and what a prompt is counted with
MESSAGES_COUNT = WireModel("MessagesCountFields", "Body of ``POST /v1/messages/count_tokens``.", (
    _MODEL, Field("messages", "list[AnthropicMessage]", REQUIRED, doc="a non-empty list of {role, content}."),
    Field("system", "str | list[AnthropicText] | None"), Field("tools", "list[AnthropicTool] | None"),
    Field("tool_choice", "AnthropicToolChoice | None"), Field("thinking", _OPEN),
    Field("output_config", "AnthropicOutputConfig | None"), Field("cache_control", _OPEN),
), extra="forbid")

MESSAGES = WireModel("MessagesFields", "Body of ``POST /v1/messages``.", (
    Field("max_tokens", "int", REQUIRED, range=_TOKENS, engine="max_tokens",
          doc="a whole number of tokens, at least 1."),
    Field("stop_sequences", "list[str] | None", engine="stop"),
    Field("temperature", "float | None", range=Range(0.0, 1.0), engine="temperature"),
    Field("top_p", "float | None", range=Range(0.0, 1.0), engine="top_p"),
    Field("top_k", "int | None", range=Range(0, 2_147_483_647, integer=True), engine="top_k"),
    _STREAM, Field("metadata", _OPEN), Field("service_tier", "str | None"), Field("speed", "str | None"),
    Field("inference_geo", "str | None"), Field("user_profile_id", "str | None"),
    Field("workspace_id", "str | None"),
), base="MessagesCountFields", extra="forbid")

#: union aliases the models name: name -> its members, in the order pydantic tries them
UNIONS = {
    "ResponsesItem": ("ResponsesMessage", "ResponsesFunctionCall", "ResponsesFunctionOutput"),
    "AnthropicBlock": ("AnthropicText", "AnthropicToolUse", "AnthropicToolResult", "AnthropicThinking"),
}

#: every model, in the order the generated module defines them (a model after the ones it names)
MODELS = (*RESPONSES_ITEMS, RESPONSES, *MESSAGES_ITEMS, MESSAGES_COUNT, MESSAGES)
#: each wire's request models: the generated ``<WIRE>_RANGES`` and ``<WIRE>_ENGINE`` tables read them
WIRES = {"RESPONSES": (RESPONSES,), "MESSAGES": (MESSAGES_COUNT, MESSAGES)}
