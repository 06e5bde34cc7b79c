"""Tools a model may call: a Python function (its schema from type hints and the docstring's first
paragraph) or any callable with a JSON schema (an MCP server's tool), and the strict check of the
arguments a model wrote before anything runs.

Arguments are refused, with the reason sent back as the tool's result, when they are not one JSON
object, when a key appears twice (``{"n": 1, "n": 2}`` reads as either, so it runs as neither),
or when they do not validate against the very schema that was offered (``{"n": "7"}`` for an
integer ``n`` is refused, not coerced). A Python function's arguments are then converted by
pydantic in strict JSON mode (a date from its ISO string, a model from its object) and never
coerced across types.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pydantic

__all__ = ["ArgumentsError", "FunctionTool", "ToolDescriptionError", "parse_arguments", "result_text"]

log = logging.getLogger("qfnb.agents.tools")


class ToolDescriptionError(ValueError):
    """A function whose parameters cannot be described as a JSON schema."""


class ArgumentsError(ValueError):
    """A model's arguments that do not fit the offered schema (the message says why)."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ArgumentsError(f"duplicate key {key!r} in the arguments")
        seen[key] = value
    return seen


def parse_arguments(arguments: str, schema: dict[str, Any], *, run_patterns: bool = True) -> dict[str, Any]:
    """The arguments a model wrote, as a dict, checked against the offered ``schema``; raises
    :class:`ArgumentsError` naming the problem. A ``$ref`` is resolved within ``schema`` only
    (never fetched). ``run_patterns=False`` (a schema from elsewhere: an MCP server's) leaves its
    regular expressions (``pattern``, ``patternProperties``) unrun, to whoever wrote them:
    Python's ``re`` backtracks, and one such pattern can hold the kernel for hours."""
    try:
        value = json.loads(arguments or "{}", object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as exc:
        raise ArgumentsError(f"the arguments are not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, dict):
        raise ArgumentsError(f"the arguments must be a JSON object, not {type(value).__name__}")
    import jsonschema  # 2 s to import (its format checkers): where arguments are checked, as elsewhere in qfnb
    import referencing  # jsonschema's own dependency, loaded with it
    import referencing.exceptions

    kind = jsonschema.Draft202012Validator if run_patterns else _validator_without_patterns()
    validator = kind(schema, format_checker=kind.FORMAT_CHECKER, registry=referencing.Registry())
    try:
        problem = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except referencing.exceptions.Unresolvable as exc:
        raise ArgumentsError(f"the tool's schema refers to {exc}, which is not fetched: only $refs inside the "
                             "schema are followed") from None
    if problem is not None:
        where = "/".join(str(p) for p in problem.absolute_path) or "arguments"
        raise ArgumentsError(f"{where}: {problem.message}")
    return value


@functools.cache
def _validator_without_patterns() -> Any:
    """Draft 2020-12 without ``pattern`` and ``patternProperties`` (their regular expressions
    are not run: the server checks them)"""
    import jsonschema  # see parse_arguments

    def unrun(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        return iter(())

    return jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                        {"pattern": unrun, "patternProperties": unrun})


def result_text(value: Any) -> str:
    """What the model reads as a tool's result: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class FunctionTool:
    """One tool: its name, description and JSON schema as offered to the model, and ``invoke``,
    which takes the checked arguments and returns the result (any value; see :func:`result_text`)."""

    name: str
    description: str
    parameters: dict[str, Any]
    invoke: Callable[[dict[str, Any]], Any]
    #: whether the schema's regular expressions are run on the arguments (False for a schema from
    #: elsewhere; see :func:`parse_arguments`)
    run_patterns: bool = True

    @classmethod
    def from_function(cls, fn: Callable[..., Any]) -> FunctionTool:
        """The tool of a Python function: schema from its type hints, description from the first
        paragraph of its docstring; raises :class:`ToolDescriptionError` for a parameter pydantic
        cannot describe."""
        name = getattr(fn, "__name__", type(fn).__name__)
        try:
            params = pydantic.TypeAdapter(fn).json_schema()  # type: ignore[arg-type]  # a function is a type form to pydantic
            arguments_model = _arguments_model(fn)
        except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as exc:
            raise ToolDescriptionError(f"{name}: cannot describe its parameters: {exc}") from None
        params.pop("additionalProperties", None)  # extra keys are refused by the model below, not offered as a rule
        doc = (inspect.getdoc(fn) or "").split("\n\n", 1)[0].strip()

        def invoke(arguments: dict[str, Any]) -> Any:
            try:
                checked = arguments_model.model_validate_json(json.dumps(arguments), strict=True)
            except pydantic.ValidationError as exc:
                raise ArgumentsError(_first_error(exc)) from None
            return fn(**dict(checked))

        return cls(name, doc or name.replace("_", " "), params, invoke)

    def spec(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}``: a v1 ``functions`` entry."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def openai_tool(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry."""
        return {"type": "function", "function": self.spec()}

    def call(self, arguments: str) -> str:
        """Check ``arguments`` (the model's JSON text) and run the tool; its result as text. Raises
        :class:`ArgumentsError` for arguments that do not fit, and whatever the tool raises."""
        return result_text(self.invoke(parse_arguments(arguments, self.parameters, run_patterns=self.run_patterns)))


def _arguments_model(fn: Callable[..., Any]) -> type[pydantic.BaseModel]:
    """A pydantic model of ``fn``'s parameters (extra keys forbidden), for strict JSON conversion."""
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn, eval_str=True).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"*{param.name} parameters cannot be described")
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model: type[pydantic.BaseModel] = pydantic.create_model(
        f"{getattr(fn, '__name__', 'tool')}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields)
    return model


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
    return f"{where}: {err.get('msg', 'invalid')}"
