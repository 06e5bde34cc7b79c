"""The checks the Responses and Messages bodies share (their models are :mod:`.bodies`, written
from ``tools/spec/wires.py``): the body's fields as the spec lists them, each wire's ranges, a nested
item read into its model, the functions a request offers and its answer's schema.

Each problem raises one :class:`ProtocolError` naming the client's own field (``input[0].role``,
``tools[1].input_schema``, ``max_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.limits import check_ranges
from qfnb.protocol.schema.accepted import check_schema, check_schema_total
from qfnb.protocol.wires.chat.openai_wire import drop_nulls, refuse_unknown
from qfnb.protocol.wires.chat.tools import FUNCTION_NAME, check_tool_count

__all__ = ["OfferedFunction", "body_fields", "by_type", "check_answer_schema", "check_body", "check_functions",
           "check_named_choice", "item_of", "literals", "offered_functions", "parse_body", "where_of"]

M = TypeVar("M", bound=BaseModel)


def body_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The wire names of a body model's fields, in the spec's order."""
    return tuple(f.alias or name for name, f in model.model_fields.items())


def where_of(loc: Sequence[int | str], prefix: str = "") -> str:
    """A pydantic error's location as the client names it: ``input[0].role``."""
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def parse_body(model: type[M], data: Any) -> M:
    """``data`` read into ``model``: a problem raises the one :class:`ProtocolError` a check raised,
    or names where pydantic found it (``text.format.type``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        inner = (first.get("ctx") or {}).get("error")
        if isinstance(inner, ProtocolError):
            raise inner from None
        raise ProtocolError(where_of(first["loc"]) or "body", first["msg"]) from None


def item_of(model: type[M], raw: Any, where: str) -> M:
    """``raw`` read into ``model`` (nulls dropped); a problem names the key under ``where``."""
    if isinstance(raw, model):
        return raw
    if not isinstance(raw, dict):
        raise ProtocolError(where, f"must be an object, got {type(raw).__name__}")
    try:
        return model.model_validate(drop_nulls(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProtocolError(where_of(first["loc"], where), first["msg"]) from None


def check_body(data: Any, model: type[BaseModel], api: str, ranges: Mapping[str, tuple[float, float, bool, bool]],
               required: Mapping[str, str]) -> Any:
    """A body's nulls dropped (clients send ``null`` for "absent"), any field the spec does not list
    refused by name (with what ``api`` takes), the wire's ``required`` fields that ``model`` has
    present (name -> what it is; a string one not empty), and the wire's own ranges."""
    if not isinstance(data, dict):
        return data
    data = drop_nulls(data)
    fields = body_fields(model)
    refuse_unknown(data, fields, api)
    for name, what in required.items():
        if name in fields and (name not in data or (model.model_fields[name].annotation is str
                                                    and not (isinstance(data[name], str) and data[name]))):
            raise ProtocolError(name, f"is required: {what}")
    check_ranges(data, ranges)
    return data


def by_type(union: Any) -> dict[str, Any]:
    """The members of a union of the spec's item models (each a ``type[BaseModel]``) by the ``type`` each
    takes (its ``Literal``'s values): the caller names the union's own type."""
    return {kind: member for member in get_args(union) for kind in literals(member.model_fields["type"].annotation)}


def literals(annotation: Any) -> tuple[Any, ...]:
    """The ``Literal`` values an annotation allows, through unions (``Literal["auto"] | Named | None``: ``auto``)."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return tuple(value for arg in get_args(annotation) for value in literals(arg))


class OfferedFunction(NamedTuple):
    """A function a request offers, in any wire's shape: where it is (``tools[0]``), its name,
    description, parameters' schema (and the key the wire names it under) and strictness."""

    where: str
    name: str
    description: str | None
    schema: Mapping[str, Any] | None
    schema_key: str
    strict: bool | None

    def function(self) -> dict[str, Any]:
        """The function as the engine's tools take it (``name``, ``description``, ``parameters``, ``strict``)."""
        return {"name": self.name, "description": self.description, "parameters": self.schema, "strict": self.strict}


def offered_functions(tools: Sequence[Any] | None, schema_key: str) -> list[OfferedFunction]:
    """The function tools of a request (each with ``name``, ``description``, ``strict`` and its schema
    under ``schema_key``), as the checks and the engine take them."""
    return [OfferedFunction(f"tools[{i}]", t.name, t.description, getattr(t, schema_key), schema_key, t.strict)
            for i, t in enumerate(tools or ())]


def check_named_choice(name: str, functions: Sequence[OfferedFunction]) -> None:
    """A ``tool_choice`` naming one function names one the request offers."""
    offered = [fn.name for fn in functions]
    if name not in offered:
        raise ProtocolError("tool_choice.name", f"{name!r} is not one of the tools given ({', '.join(offered)})")


def check_functions(functions: Sequence[OfferedFunction], field: str = "tools") -> None:
    """Every offered function: a name the engines take (1-64 letters, digits, ``_``, ``-``), given
    once; its schema within the caps; at most ``MAX_TOOLS`` of them."""
    check_tool_count(functions, field)
    names: set[str] = set()
    for fn in functions:
        if not FUNCTION_NAME.match(fn.name):
            raise ProtocolError(f"{fn.where}.name", "must be 1-64 letters, digits, '_' or '-'")
        if fn.name in names:
            raise ProtocolError(f"{fn.where}.name", f"{fn.name!r} is given twice")
        names.add(fn.name)
        if fn.schema is not None:
            check_schema(fn.schema, f"{fn.where}.{fn.schema_key}")
    check_schema_total([fn.schema for fn in functions], field)


def check_answer_schema(schema: Mapping[str, Any] | None, where: str,
                        functions: Sequence[OfferedFunction] = ()) -> None:
    """The answer's JSON schema (at ``where``), then the request's schemas together (a required
    call's grammar joins them all)."""
    if schema is not None:
        check_schema(schema, where)
    check_schema_total([schema, *(fn.schema for fn in functions)], where.split(".")[0])
