"""The vocabulary of the call specs (:mod:`spec.inference`): a parameter, a range, a call, a wire model.

Nothing here is imported by qfnb at runtime; ``tools/call_spec.py`` reads the specs and writes
the generated modules (see its docstring for which).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

#: a parameter that has no default (the caller must give it)
REQUIRED = "<required>"
#: ``Field.wire`` of a parameter that only says how the call is sent (never in the body)
NOT_SENT = ""


@dataclass(frozen=True)
class Range:
    """``lo <= value <= hi`` (``lo`` excluded when ``lo_open``); ``integer``: an int, else any number.
    ``hi_name``: a constant of ``qfnb.protocol.limits`` the generated code names instead of ``hi``."""

    lo: float
    hi: float
    lo_open: bool = False
    integer: bool = False
    hi_name: str | None = None

    def text(self) -> str:
        """``(0, 1]``, as a doc line or a message shows it."""
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"

    def source(self) -> str:
        """The ``RANGES`` entry: ``(low, high, low end open, integer)``."""
        hi = self.hi_name or repr(self.hi)
        return f"({self.lo!r}, {hi}, {self.lo_open}, {self.integer})"


@dataclass(frozen=True)
class Option:
    """How a notebook magic takes a parameter: its flags (``("-t", "--temperature")``) and value type."""

    flags: tuple[str, ...]
    type: str  # int | float | str

    @property
    def label(self) -> str:
        return "/".join(self.flags)


@dataclass(frozen=True)
class Field:
    """One parameter of a call, and the body field it becomes.

    ``name``/``type``/``default``: the ``ado`` parameter (``default`` is source text, or
    :data:`REQUIRED`); ``wire``: the body field's name (``None``: ``name``; :data:`NOT_SENT`:
    not in the body); ``to_wire``: source text of the body value, over ``value``; ``wire_type``/
    ``wire_default``: the pydantic wire model's annotation and default where they differ from the
    call's; ``range``: the documented range (checked by the client, the notebook and the local
    platform alike); ``doc``: the ``:param:`` line; ``option``: the notebook flag, if any;
    ``engine``: the name the local engines take it under (``qfnb.local.engines.ask.Sampling``), if any.
    """

    name: str
    type: str
    default: str = "None"
    doc: str = ""
    wire: str | None = None
    to_wire: str | None = None
    wire_type: str | None = None
    wire_default: str | None = None
    range: Range | None = None
    option: Option | None = None
    engine: str | None = None

    @property
    def wire_name(self) -> str | None:
        """The body field's name, or None when the parameter is not sent."""
        if self.wire == NOT_SENT:
            return None
        return self.wire or self.name

    def doc_line(self) -> str:
        """The doc with the range appended (``sampling temperature, ``(0, 1]``.``)."""
        if self.range is None or self.range.hi_name:
            return self.doc
        return f"{self.doc.rstrip('.')}, ``{self.range.text()}``."

    def but(self, **changes: Any) -> Field:
        """This field with some attributes changed (a call's own doc line, say)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Call:
    """One inference resource's ``ado``: ``positional`` in the official SDK's order (the slot is
    the index), then ``keyword`` (keyword-only), then ``**kwargs`` (further body fields).

    ``module``: the generated file's name under ``_generated``; ``calls``: the class written
    there; ``call``: the typed call class in ``params.py``; ``send``: ``_acall`` (a call that
    may stream) or ``_acall_one``; ``answer``/``chunk``: the answer model of a response and of
    a stream chunk (:mod:`spec.answers`); ``summary``: the docstring's first paragraph.
    """

    module: str
    resource: str
    calls: str
    call: str
    summary: str
    positional: tuple[Field, ...]
    keyword: tuple[Field, ...] = ()
    send: str = "_acall"
    answer: str = "AnswerModel"
    chunk: str = "AnswerModel"
    call_doc: str = ""
    imports: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def params(self) -> tuple[Field, ...]:
        return self.positional + self.keyword

    @property
    def streams(self) -> bool:
        return any(f.name == "stream" for f in self.params)


@dataclass(frozen=True)
class AnswerModel:
    """A lenient answer model (``<name>`` in ``qfnb/protocol/wires/qianfan/answers.py``), on top of ``base``'s fields.

    Each field must have a default (the platform may omit it); ``wire`` is the answer's key where it
    differs from the Python name (``jobId`` for ``job_id``); a default ``X()`` is a fresh ``X`` each time.
    """

    name: str
    doc: str
    fields: tuple[Field, ...]
    base: str = "AnswerModel"


@dataclass(frozen=True)
class WireModel:
    """A pydantic model's fields (``<name>`` in the generated module), on top of ``base``'s.
    ``extra``: what the model does with a key it does not name (``"allow"``: keeps it; ``"forbid"``:
    refuses it, a request body of :mod:`spec.wires`)."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    base: str = "WireModel"
    extra: str = "allow"


@dataclass(frozen=True)
class TrainOption:
    """A ``%qftrain`` hyperparameter option: the field it sets, its flags, the hyperparameter (a key
    of ``qfnb.protocol.console.training.LIMITS``: its type and range) and its doc line."""

    name: str
    flags: tuple[str, ...]
    hyper: str
    doc: str

    @property
    def config_field(self) -> str:
        """The ``TrainConfig`` field: the hyperparameter in snake case (``learningRate`` -> ``learning_rate``)."""
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in self.hyper)
