"""``QfResponse``: one platform answer (or one stream chunk), dict-like over its body."""

from __future__ import annotations

from collections.abc import Callable, Iterator, KeysView, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, cast

from typing_extensions import TypeVar

from qfnb._core.transport import json_or_none
from qfnb.protocol.platform.daemon import MODEL_HEADER

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.answer import AnswerModel
    from qfnb.protocol.wires.qianfan.answers import Choice, TokenUsage

__all__ = ["Provenance", "QfRequest", "QfResponse"]

#: the answer model ``.parsed`` gives (:mod:`qfnb.protocol.wires.qianfan.answers`); ``AnswerModel``: untyped fields only
T = TypeVar("T", bound="AnswerModel", default="AnswerModel")
#: another answer model (:meth:`QfResponse.with_answer`)
A = TypeVar("A", bound="AnswerModel")

#: a response's provenance, or what makes it on first read (one maker a call, shared by its chunks)
Provenance: TypeAlias = "dict[str, Any] | Callable[[], dict[str, Any]]"

_SECRET_HEADERS = frozenset({"authorization", "x-bce-security-token", "x-auth-token", "cookie"})


class QfRequest:
    """What was sent, without secrets: method, URL path (no query), request id, and the JSON
    body (``json_body``, as the official SDK's record; credentials never travel in a body) and
    the non-credential headers (``headers``; the auth headers are not kept)."""

    __slots__ = ("_content", "headers", "method", "request_id", "url")

    def __init__(self, method: str, url: str, request_id: str | None = None, *, content: bytes = b"",
                 headers: Mapping[str, str] | None = None) -> None:
        self.method = method
        self.url = url
        self.request_id = request_id
        self._content = content
        # filtered at once: a credential must never be kept, not even until a first read (a pickled answer)
        self.headers: dict[str, str] = {k: v for k, v in (headers or {}).items()
                                        if k.lower() not in _SECRET_HEADERS}

    @property
    def content(self) -> bytes:
        """The body sent, as its bytes."""
        return self._content

    @property
    def json_body(self) -> dict[str, Any]:
        """The JSON body sent ({} for none or a non-JSON body)."""
        body = json_or_none(self._content)
        return body if isinstance(body, dict) else {}

    def __repr__(self) -> str:
        return f"QfRequest({self.method} {self.url})"


class QfResponse(Mapping[str, Any], Generic[T]):
    """The platform's response: ``code`` (HTTP status), ``headers``, ``body`` (dict),
    ``statistic`` (latencies in seconds; ``start_timestamp`` in ms) and ``request``.

    ``resp["result"]`` reads the body; ``resp["body"]["result"]`` works too, as in the
    official SDK. ``resp.parsed`` is the body as the call's typed answer model ``T``
    (``ChatCompletion().do(...)`` is a ``QfResponse[ChatAnswer]``), read on first access;
    ``resp.result`` / ``resp.usage`` / ``resp.choices`` give typed access too.
    """

    __slots__ = ("_answer", "_parsed", "_provenance", "body", "code", "headers", "image", "request", "statistic")

    def __init__(self, code: int, headers: Mapping[str, str], body: dict[str, Any],
                 request: QfRequest | None = None, statistic: dict[str, Any] | None = None) -> None:
        self.code = code
        self.headers = headers
        self.body = body
        self.request = request
        self.statistic: dict[str, Any] = statistic if statistic is not None else {}
        self.image: Any = None
        self._provenance: Provenance = {}
        #: the model ``parsed`` reads: a class, or the name of one in qfnb.protocol.wires.qianfan.answers
        self._answer: type[AnswerModel] | str = "AnswerModel"
        self._parsed: AnswerModel | None = None

    # -- mapping over the body (with "body"/"code"/"headers" as the SDK's legacy keys) --
    def __getitem__(self, key: str) -> Any:
        if key in self.body:
            return self.body[key]
        if key in ("body", "code", "headers", "statistic"):
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self.body

    def __iter__(self) -> Iterator[str]:
        return iter(self.body)

    def __len__(self) -> int:
        return len(self.body)

    def keys(self) -> KeysView[str]:
        return self.body.keys()

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the answer came from: model, parameters, prompt hash, usage, latency, cache hit,
        platform (set by the client for inference calls; never holds a secret; made on first read)."""
        made = self._provenance
        if not isinstance(made, dict):
            made = self._provenance = made()
        return made

    @provenance.setter
    def provenance(self, value: Provenance) -> None:
        self._provenance = value

    # -- typed accessors --
    @property
    def parsed(self) -> T:
        """The body as the call's answer model (:mod:`qfnb.protocol.wires.qianfan.answers`), read once, on first
        access. It never fails on a live answer: fields the platform left out read as their
        defaults, unknown ones are kept (``parsed.model_extra``), and one of an unexpected shape
        reads as its default (the raw value stays in ``body``). An edit of ``body`` made after
        the first access is not seen here."""
        if self._parsed is None:
            model = self._answer
            if isinstance(model, str):
                # deferred: loads pydantic; only a caller who reads ``parsed`` pays for the models
                from qfnb.protocol.wires.qianfan import answers

                model = getattr(answers, model)
            self._parsed = model.model_validate(self.body)
        return cast(T, self._parsed)

    def with_answer(self, model: type[A]) -> QfResponse[A]:
        """This response, its :attr:`parsed` read as ``model`` from now on."""
        self._answer, self._parsed = model, None
        return cast("QfResponse[A]", self)

    def with_answer_named(self, name: str) -> QfResponse[Any]:
        """:meth:`with_answer` by the name of a model in :mod:`qfnb.protocol.wires.qianfan.answers`, imported when
        :attr:`parsed` is first read (the calls set theirs so: importing one leaves the models unimported)."""
        self._answer, self._parsed = name, None
        return self

    @property
    def result(self) -> str:
        """The text answer: v1 ``result``, or v2 ``choices[0].message/delta.content``."""
        if "result" in self.body:
            return str(self.body["result"] or "")
        choices = self.choices
        return (choices[0].message.content or choices[0].delta.content or "") if choices else ""

    @property
    def usage(self) -> TokenUsage:
        """The body's ``usage`` (:class:`~qfnb.protocol.wires.qianfan.answers.TokenUsage`; zeros if absent or
        malformed)."""
        # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
        from qfnb.protocol.wires.qianfan.answers import TokenUsage

        usage = self.body.get("usage")
        return TokenUsage.model_validate(usage if isinstance(usage, dict) else {})

    @property
    def choices(self) -> list[Choice]:
        """The v2 answer's choices (:class:`~qfnb.protocol.wires.qianfan.answers.Choice`):
        ``resp.choices[0].message.content`` (a stream chunk: ``.delta.content``); ``[]`` for a v1 answer."""
        # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
        from qfnb.protocol.wires.qianfan.answers import Choice

        raw = self.body.get("choices")
        return [Choice.model_validate(c) for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []

    @property
    def served_model(self) -> str:
        """The model the platform says answered (the local platform's ``MODEL_HEADER``), or ""."""
        headers = self.headers
        if type(headers) is not dict:  # a transport's reply: its headers are looked up case-insensitively
            return str(headers.get(MODEL_HEADER) or "")
        wanted = MODEL_HEADER.lower()
        return next((str(v) for k, v in headers.items() if k.lower() == wanted and v), "")

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-baidu-request-id") or (self.request.request_id if self.request else None)

    def __repr__(self) -> str:
        return f"QfResponse(code={self.code}, body={self.body!r})"
