"""The inference calls, declared once: every parameter's name, type, default, wire name, range,
positional slot (its place in ``positional``) and doc line.

``python tools/generate.py`` writes from this file:

* ``qfnb/resources/inference/_generated/<module>.py``: each resource's ``ado``/``do`` with the
  ``stream`` overloads;
* ``qfnb/resources/inference/params.py``: the typed call dataclasses and their wire bodies, and
  ``LOCAL_KWARGS``, the call arguments never sent;
* ``qfnb/protocol/wires/chat/ranges.py``: ``RANGES``, ``OPENAI_RANGES`` and ``TEXT2IMAGE_RANGES``;
  ``qfnb/protocol/wires/chat/fields.py``: the fields of the pydantic wire models
  (``qfnb/protocol/wires/qianfan/inference.py`` adds the validators);
* ``qfnb/protocol/wires/qianfan/answers.py``: the answer models (declared in :mod:`spec.answers`; each call names
  its answer and chunk models here);
* ``qfnb/common/cli/sampling_flags.py``: the official CLI's sampling flags;
* ``qfnb/protocol/wires/qianfan/sampling.py``: the typed :class:`SamplingOptions` (what the magics build and
  ``ado(sampling=...)`` takes whole);
* ``qfnb/notebook/sampling.py``: the sampling options of ``%%qfchat``, ``%qfeval`` and
  ``%qfbatch`` (flags and help);
* ``qfnb/notebook/magic_options.py``: ``%qfimage``'s options (``NOTEBOOK_IMAGE``) and, from
  ``tools/spec/training.py``, ``%qftrain``'s hyperparameter options.

To add a body field to a call, add a :class:`Field` to its ``keyword`` (and to the wire model
that carries it, below), then run the generator. Nothing else is edited by hand.
"""

from __future__ import annotations

from spec.schema import NOT_SENT, REQUIRED, Call, Field, Option, Range, WireModel

# ---------------------------------------------------------------------------- shared fields
MODEL = Field("model", "str | None", doc="a model name (built-in catalog or the platform's list); default: the "
              "instance's, then the config's default.", wire=NOT_SENT)
ENDPOINT = Field("endpoint", "str | None", doc="a custom service's endpoint suffix (wins over ``model``).",
                 wire=NOT_SENT)
STREAM = Field("stream", "bool", "False", doc="``True``: an async iterator of chunks instead of one response.",
               wire=NOT_SENT)
RETRY_COUNT = Field("retry_count", "int | None", doc="tries in all; ``None``: the config's ``llm_api_retry_count``.",
                    wire=NOT_SENT)
REQUEST_TIMEOUT = Field("request_timeout", "float | None", doc="seconds per try; ``None``: the config's.",
                        wire=NOT_SENT)
REQUEST_ID = Field("request_id", "str | None", doc="sent as the request's id (the platform echoes it).",
                   wire=NOT_SENT)
BACKOFF_FACTOR = Field("backoff_factor", "float | None", doc="the retry backoff factor; ``None``: the config's.",
                       wire=NOT_SENT)
#: the official SDK's transport options, in its positional order
TRANSPORT = (MODEL, ENDPOINT, STREAM, RETRY_COUNT, REQUEST_TIMEOUT, REQUEST_ID, BACKOFF_FACTOR)
IDEMPOTENCY_KEY = Field(
    "idempotency_key", "str | None", wire=NOT_SENT,
    doc="sent as the call's ``Idempotency-Key`` instead of a new key per call (1 to 255 printable ASCII "
        "characters): the same key sent again (a retry of your own, another process) attaches to the local "
        "platform's work on it or gets its kept answer, with no new engine call (the openai SDK's "
        "``idempotency_key``).")
#: what every call carries (the ``InferenceCall`` base class): where it goes and how it is sent
CALL_OPTIONS = (*TRANSPORT, IDEMPOTENCY_KEY)
#: the official SDK's retry options that arrive in ``**kwargs`` (the others are named parameters)
RETRY_KWARGS = ("retry_jitter", "retry_max_wait_interval", "retry_err_codes")
#: the official SDK's options that arrive in ``**kwargs``: read by the SDK (or accepted and left
#: alone), never sent in the body; with every call's ``wire=NOT_SENT`` parameters they make
#: ``params.LOCAL_KWARGS``
SDK_KWARGS = (*RETRY_KWARGS, "retry_err_handler", "show_total_latency", "adapt_openai_message_format")

USER_ID = Field("user_id", "str | None", doc="the end user's id, for the platform's abuse checks.")
TEMPERATURE = Field("temperature", "float | None", doc="sampling temperature.", range=Range(0.0, 1.0, lo_open=True),
                    option=Option(("-t", "--temperature"), "float"), engine="temperature")
TOP_P = Field("top_p", "float | None", doc="nucleus sampling mass.", range=Range(0.0, 1.0),
              option=Option(("--top-p",), "float"), engine="top_p")
TOP_K = Field("top_k", "int | None", doc="sample from the ``top_k`` likeliest tokens.",
              range=Range(1, 1_000, integer=True), option=Option(("--top-k",), "int"), engine="top_k")
PENALTY_SCORE = Field("penalty_score", "float | None", doc="repetition penalty.", range=Range(1.0, 2.0),
                      option=Option(("--penalty-score",), "float"), engine="repeat_penalty")
STOP = Field("stop", "list[str] | None", doc="strings that end the answer.", engine="stop")
MAX_OUTPUT_TOKENS = Field("max_output_tokens", "int | None", doc="the most tokens to generate.",
                          range=Range(1, 65_536, integer=True, hi_name="MAX_OUTPUT_TOKENS"),
                          option=Option(("--max-tokens",), "int"), engine="max_tokens")
#: v1 sampling, the same on chat and completion
SAMPLING = (TEMPERATURE, TOP_P, TOP_K, PENALTY_SCORE, STOP, MAX_OUTPUT_TOKENS, USER_ID)

# the v2 (OpenAI-style) body's own sampling fields
_TOKENS = Range(1, 65_536, integer=True, hi_name="MAX_OUTPUT_TOKENS")
SEED = Field("seed", "int | None", doc="the random seed.", range=Range(1, 2_147_483_647, integer=True), engine="seed")
FREQUENCY_PENALTY = Field("frequency_penalty", "float | None", doc="frequency penalty.", range=Range(-2.0, 2.0),
                          engine="frequency_penalty")
PRESENCE_PENALTY = Field("presence_penalty", "float | None", doc="presence penalty.", range=Range(-2.0, 2.0),
                         engine="presence_penalty")
MAX_TOKENS = Field("max_tokens", "int | None", doc="the most tokens to generate (v2).", range=_TOKENS,
                   engine="max_tokens")
MAX_COMPLETION_TOKENS = Field("max_completion_tokens", "int | None", doc="the most tokens to generate (v2).",
                              range=_TOKENS, engine="max_tokens")

#: OpenAI's own ranges, on the platform's OpenAI routes (``/v1/chat/completions``, ``/v2/chat/completions``)
#: and OpenAI batch rows, by wire name: OpenAI's where they differ from Qianfan's, else the field's own
OPENAI_RANGES = {
    "temperature": Range(0.0, 2.0),  # 0: greedy
    "top_p": TOP_P.range,
    "frequency_penalty": FREQUENCY_PENALTY.range,
    "presence_penalty": PRESENCE_PENALTY.range,
    "penalty_score": PENALTY_SCORE.range,
    "top_k": TOP_K.range,
    "seed": Range(-(2**63), 2**63 - 1, integer=True),
    "n": Range(1, 8, integer=True),  # the local platform answers up to 8 choices at once
    "top_logprobs": Range(0, 20, integer=True),
    "max_tokens": MAX_TOKENS.range,
    "max_completion_tokens": MAX_COMPLETION_TOKENS.range,
}

#: the notebook magics' sampling options (%%qfchat, %qfeval, %qfbatch), in their help's order; the fields of
#: the typed ``SamplingOptions`` (``qfnb/protocol/wires/qianfan/sampling.py``)
NOTEBOOK_SAMPLING = (TEMPERATURE, TOP_P, TOP_K, PENALTY_SCORE, MAX_OUTPUT_TOKENS)
#: chat's and completion's typed entry: the sampling options passed whole (what a magic builds); the official
#: keywords stay, and one given by name wins
SAMPLING_OPTIONS = Field("sampling", "SamplingOptions | None", wire=NOT_SENT,
                         doc="the sampling fields as one typed object (:class:`~qfnb.protocol.wires.qianfan.sampling."
                             "SamplingOptions`); a field also given by its own keyword wins.")
#: the official CLI's sampling flags (``qfnb chat``, ``completion``, ``plugin``: each option's long flag),
#: in their help's order; ``--top-k`` is chat's only
CLI_SAMPLING = (TEMPERATURE, TOP_P, TOP_K, PENALTY_SCORE)

KWARGS_DOC = "further body fields the platform accepts, sent as given."

#: names ``params.py`` defines for the specs' types and defaults: name -> (source, doc comment)
CONSTANTS = {
    "ChatMessages": ("Sequence[Mapping[str, Any]] | Messages",
                     "a conversation: ``[{\"role\": \"user\", \"content\": \"你好\"}, ...]`` or :class:`Messages`"),
    "CONTINUE_PROMPT": ('"继续"', "what ``auto_concat_truncate`` sends to ask for the rest of a truncated answer "
                                  "(the SDK's default)"),
}

# ---------------------------------------------------------------------------- calls
CHAT = Call(
    module="chat", resource="ChatCompletion", calls="ChatCompletionCalls", call="ChatCall",
    answer="ChatAnswer", chunk="ChatChunk",
    summary="Chat with the model.",
    positional=(
        Field("messages", "ChatMessages", REQUIRED, doc="the conversation, oldest first, ending with a user turn.",
              to_wire="value.to_list() if isinstance(value, Messages) else value"),
        MODEL.but(doc="a model name (built-in catalog or the platform's list); default: the instance's, then the "
                      "config's default chat model."),
        ENDPOINT, STREAM, RETRY_COUNT, REQUEST_TIMEOUT, REQUEST_ID, BACKOFF_FACTOR,
        Field("auto_concat_truncate", "bool", "False", wire=NOT_SENT,
              doc="continue an answer the platform marks ``is_truncated`` (the partial answer as the assistant "
                  "turn, then ``truncated_continue_prompt``) until it is complete: one response whose ``result`` is "
                  "the whole answer and whose ``usage`` adds up every round; with ``stream=True`` the chunks of "
                  "every round."),
        Field("truncated_continue_prompt", "str", "CONTINUE_PROMPT", wire=NOT_SENT,
              doc="the user turn that asks for the rest."),
        Field("truncate_overlong_msgs", "bool", "False", wire=NOT_SENT,
              doc="drop the oldest turns until the model's input limit fits."),
    ),
    keyword=(Field("system", "str | None", doc="the system prompt (v1)."), *SAMPLING, SAMPLING_OPTIONS,
             IDEMPOTENCY_KEY),
)

COMPLETION = Call(
    module="completion", resource="Completion", calls="CompletionCalls", call="CompletionCall",
    answer="CompletionAnswer", chunk="CompletionChunk",
    summary="Continue ``prompt`` (a chat model gets it as one user turn).",
    positional=(Field("prompt", "str", REQUIRED, doc="the text to continue."), *TRANSPORT),
    keyword=(*SAMPLING, SAMPLING_OPTIONS, IDEMPOTENCY_KEY),
)

EMBEDDING = Call(
    module="embedding", resource="Embedding", calls="EmbeddingCalls", call="EmbeddingCall", send="_acall_one",
    answer="EmbeddingAnswer",
    summary='Embed ``texts``: ``resp["data"][i]["embedding"]`` is the vector of ``texts[i]``.',
    call_doc="``texts`` go on the wire as ``input``",
    positional=(
        Field("texts", "list[str] | str", REQUIRED, wire="input", wire_type="list[str]",
              to_wire="[value] if isinstance(value, str) else value",  # one string: a list of one
              doc="the texts, at most 16 per call; one string is taken as a list of one (the official SDK sends a "
                  "bare string as given, which the platform's list-of-texts field does not describe)."),
        MODEL, ENDPOINT, RETRY_COUNT, REQUEST_TIMEOUT, REQUEST_ID, BACKOFF_FACTOR,
    ),
    keyword=(USER_ID, IDEMPOTENCY_KEY),
)

IMAGE2TEXT = Call(
    module="image2text", resource="Image2Text", calls="Image2TextCalls", call="Image2TextCall",
    answer="Image2TextAnswer", chunk="Image2TextChunk",
    summary="Ask ``prompt`` about ``image``.",
    positional=(Field("prompt", "str", REQUIRED, doc="the question about the image."),
                Field("image", "str | bytes", REQUIRED, doc="the image, as base64 text or bytes."), *TRANSPORT),
)

PLUGIN = Call(
    module="plugin", resource="Plugin", calls="PluginCalls", call="PluginCall",
    answer="PluginAnswer", chunk="PluginChunk",
    summary="Run a plugin app (``endpoint=``) on ``query``, or an ERNIE Bot plugin model on a conversation.",
    positional=(
        Field("query", "str | ChatMessages | None", wire_type="str | None",
              doc="the question (a plugin app), or the conversation (ERNIE Bot plugins: a list of messages or "
                  ":class:`Messages`, sent as ``messages``)."),
        Field("plugins", "list[str] | None", doc='the plugins to use, e.g. ``["uuid-zhishiku"]``.'),
        *TRANSPORT,
    ),
    keyword=(Field("prompt", "str | None", doc="the seed docs' spelling of a text ``query``."),
             Field("messages", "ChatMessages | None", wire_type="list[dict[str, Any]] | None",
                   doc="the conversation for an ERNIE Bot plugin model.")),
)

RERANKER = Call(
    module="reranker", resource="Reranker", calls="RerankerCalls", call="RerankerCall", send="_acall_one",
    answer="RerankerAnswer",
    summary="Order ``documents`` by relevance to ``query``.",
    positional=(Field("query", "str", REQUIRED, doc="what the documents should answer."),
                Field("documents", "Sequence[str]", REQUIRED, doc="the texts to order."),
                Field("top_n", "int | None", doc="return only the ``top_n`` best; default: all."),
                MODEL, ENDPOINT, RETRY_COUNT, REQUEST_TIMEOUT, BACKOFF_FACTOR),
    keyword=(REQUEST_ID,),
    imports={"collections.abc": ("Sequence",)},
)

# Text2Image's own fields (their ranges are its own table, TEXT2IMAGE_RANGES, not the sampling RANGES)
IMAGE_SIZE = Field("size", "str | None", wire_type="str", wire_default='"1024x1024"',
                   doc='``"WIDTHxHEIGHT"``, e.g. ``"1024x1024"``.', option=Option(("--size",), "str"))
IMAGE_COUNT = Field("n", "int | None", wire_type="int", wire_default="1", doc="how many images.",
                    range=Range(1, 4, integer=True), option=Option(("-n",), "int"))
#: %qfimage's Text2Image options, in its help's order
NOTEBOOK_IMAGE = (IMAGE_SIZE, IMAGE_COUNT)

TEXT2IMAGE = Call(
    module="text2image", resource="Text2Image", calls="Text2ImageCalls", call="Text2ImageCall", send="_acall_one",
    answer="Text2ImageAnswer",
    summary='Draw ``prompt``: ``resp["data"][i]["b64_image"]`` (and ``["image"]``, the bytes, with '
            '``with_decode="base64"``).',
    positional=(Field("prompt", "str", REQUIRED, doc="what to draw."), MODEL, ENDPOINT,
                Field("with_decode", "str | None", wire=NOT_SENT,
                      doc='``"base64"``: also decode each image into ``["image"]`` bytes.'),
                RETRY_COUNT, REQUEST_TIMEOUT, REQUEST_ID, BACKOFF_FACTOR),
    keyword=(Field("negative_prompt", "str | None", doc="what not to draw."),
             IMAGE_SIZE, IMAGE_COUNT,
             Field("steps", "int | None", wire_type="int", wire_default="20", doc="sampling steps.",
                   range=Range(1, 50, integer=True)),
             Field("sampler_index", "str | None", doc="the sampler's name."),
             Field("seed", "int | None", doc="the random seed, for a repeatable image."),
             Field("cfg_scale", "float | None", doc="how closely the image follows the prompt."),
             Field("style", "str | None", doc="a style preset the model knows."),
             USER_ID),
)

CALLS = (CHAT, COMPLETION, EMBEDDING, IMAGE2TEXT, PLUGIN, RERANKER, TEXT2IMAGE)

# ---------------------------------------------------------------------------- wire models
_WIRE_STREAM = STREAM.but(wire=None)
_V1_MESSAGES = Field("messages", "list[dict[str, Any]]", REQUIRED)
_EXTRA_PARAMETERS = Field("extra_parameters", "dict[str, Any] | None")
# tool calling and structured output (checked by qfnb.protocol.wires.chat.tools in the models' validators)
FUNCTIONS = Field("functions", "list[dict[str, Any]] | None", doc="the functions the model may call (v1).")
TOOLS = Field("tools", "list[dict[str, Any]] | None", doc="the tools the model may call (v2).")
V1_TOOL_CHOICE = Field("tool_choice", "dict[str, Any] | None", doc="which function to call (v1).")
TOOL_CHOICE = Field("tool_choice", "str | dict[str, Any] | None", doc="which tool to call, or none/auto/required.")
PARALLEL_TOOL_CALLS = Field("parallel_tool_calls", "bool | None", doc="whether an answer may call several tools.")
V1_RESPONSE_FORMAT = Field("response_format", "str | dict[str, Any] | None", doc="text, json_object or a schema.")
RESPONSE_FORMAT = Field("response_format", "dict[str, Any] | None", doc="the answer's format (a JSON schema).")

# the OpenAI chat routes' own fields (OpenAI's 2026 chat API; checked in qfnb.protocol.wires.openai.requests)
#: OpenAI's ``service_tier`` values (the platform serves every request as ``"default"``)
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
#: OpenAI's ``reasoning_effort`` values
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


def _literal(values: tuple[str, ...]) -> str:
    return "Literal[" + ", ".join(f'"{v}"' for v in values) + "] | None"


OPENAI_CHAT_OWN = (
    Field("n", "int", "1", doc="how many choices to answer."),
    TOP_K,
    Field("logprobs", "bool | None", doc="report each token's log-probability."),
    Field("top_logprobs", "int | None", doc="alternatives per token (with ``logprobs``)."),
    Field("logit_bias", "dict[str, float] | None", doc="token id -> bias from -100 to 100."),
    Field("user", "str | None", doc="the end user (OpenAI's older name for ``safety_identifier``)."),
    USER_ID, _EXTRA_PARAMETERS,
    Field("store", "bool | None", doc="keep the completion for the stored chat completions API."),
    Field("metadata", "dict[str, str] | None", doc="up to 16 string pairs kept with a stored completion."),
    Field("service_tier", _literal(SERVICE_TIERS), doc='answered as served: ``"default"``.'),
    Field("prompt_cache_key", "str | None", doc="requests with one key share an engine slot (its prompt cache)."),
    Field("safety_identifier", "str | None", doc="the end user, kept in the usage ledger."),
    Field("reasoning_effort", _literal(REASONING_EFFORTS), doc="passed to a model that reasons."),
    Field("modalities", "list[str] | None", doc='``["text"]`` only.'),
)

WIRE_MODELS = (
    WireModel("SamplingFields", "Sampling parameters shared by chat and completion requests.",
              (_WIRE_STREAM, TEMPERATURE, TOP_P, TOP_K, PENALTY_SCORE, MAX_OUTPUT_TOKENS, STOP, USER_ID,
               _EXTRA_PARAMETERS)),
    WireModel("ChatFields", "Body of ``POST .../chat/{endpoint}``.",
              (_V1_MESSAGES, Field("system", "str | None"), FUNCTIONS, V1_TOOL_CHOICE, V1_RESPONSE_FORMAT),
              base="SamplingFields"),
    WireModel("CompletionFields", "Body of ``POST .../completions/{endpoint}``.",
              (Field("prompt", "str", REQUIRED),), base="SamplingFields"),
    WireModel("EmbeddingFields", "Body of ``POST .../embeddings/{endpoint}``.",
              (EMBEDDING.positional[0], USER_ID)),
    WireModel("Text2ImageFields", "Body of ``POST .../text2image/{endpoint}``.",
              tuple(f for f in TEXT2IMAGE.params if f.wire_name)),
    WireModel("PluginFields", "Body of a plugin call: EB plugins take ``messages``; custom plugins take ``query``.",
              (PLUGIN.positional[0], PLUGIN.keyword[1], PLUGIN.positional[1], _WIRE_STREAM)),
    WireModel("V2ChatFields", "Body of ``POST /v2/chat/completions`` (OpenAI-style).",
              (Field("model", "str", REQUIRED), _V1_MESSAGES, _WIRE_STREAM, TEMPERATURE, TOP_P, MAX_TOKENS,
               MAX_COMPLETION_TOKENS, STOP, SEED, PENALTY_SCORE, FREQUENCY_PENALTY, PRESENCE_PENALTY,
               Field("stream_options", "dict[str, Any] | None"), TOOLS, TOOL_CHOICE, PARALLEL_TOOL_CALLS,
               RESPONSE_FORMAT)),
    WireModel("OpenAIChatFields", "Body of the platform's OpenAI chat routes (``/v1|/v2/chat/completions``).",
              OPENAI_CHAT_OWN, base="V2ChatFields"),
)
