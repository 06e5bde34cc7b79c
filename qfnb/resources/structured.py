"""Structured answers: a pydantic model or a JSON-schema dict as ``response_format``, the answer
validated against it, and a batch's answers as a DataFrame (one column per field).

``%%qfchat --json/--schema``, ``do``/``batch_do(..., response_format=...)``, the v2 client and
``Dataset.test_using_llm(..., response_format=...)`` share this one rule::

    future = ChatCompletion().batch_do(prompts, response_format=Ticket)   # a pydantic class as it is
    df = future.to_dataframe()                                            # columns label, summary, error
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["ERROR_COLUMN", "AnswerSchema", "SchemaError", "answer_row", "answer_schema", "as_response_format",
           "response_format", "results_df"]

#: the DataFrame column that holds why a row has no object (None when it parsed and validated)
ERROR_COLUMN = "error"
#: the ``type`` of OpenAI's ``response_format`` forms (a dict with another ``type`` is a JSON schema)
FORMAT_TYPES = ("text", "json_object", "json_schema")


class SchemaError(ValueError):
    """The object given as a schema is neither a pydantic model class nor a valid JSON schema."""


@dataclass(frozen=True)
class AnswerSchema:
    """What an answer must be: ``schema`` None means any JSON object (``--json``)."""

    name: str
    schema: dict[str, Any] | None
    model: type[Any] | None = None  # the pydantic class, when one was given

    @property
    def response_format(self) -> dict[str, Any]:
        """The request's ``response_format`` (OpenAI's form, strict)."""
        if self.schema is None:
            return {"type": "json_object"}
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.schema, "strict": True}}

    @property
    def fields(self) -> list[str]:
        """The top-level property names, in the schema's order (the DataFrame's columns)."""
        props = (self.schema or {}).get("properties")
        return list(props) if isinstance(props, dict) else []

    def validate(self, text: str) -> Any:
        """The answer as the validated object: the pydantic instance, or the parsed dict.
        Raises ValueError saying why it does not parse or validate."""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the answer is not JSON ({exc}): {text[:80]!r}") from None
        if self.model is not None:
            import pydantic

            try:
                return self.model.model_validate(value)
            except pydantic.ValidationError as exc:
                raise ValueError(f"the answer does not match {self.name}: {exc}") from None
        if self.schema is None:
            if not isinstance(value, dict):
                raise ValueError(f"the answer is JSON but not an object: {text[:80]!r}")
            return value
        import jsonschema

        try:
            jsonschema.validate(value, self.schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
            raise ValueError(f"the answer does not match {self.name} at {where}: {exc.message}") from None
        return value


def answer_schema(obj: Any, name: str | None = None) -> AnswerSchema:
    """An :class:`AnswerSchema` for a pydantic model class or a JSON-schema dict (``name``: what
    errors and the request call it). Raises :class:`SchemaError` naming the problem."""
    import pydantic

    if isinstance(obj, type) and issubclass(obj, pydantic.BaseModel):
        return AnswerSchema(name=name or obj.__name__, schema=obj.model_json_schema(), model=obj)
    if obj == "json_object" or (isinstance(obj, dict) and obj.get("type") == "json_object"):
        return AnswerSchema(name=name or "json_object", schema=None)
    if isinstance(obj, dict):
        if obj.get("type") == "json_schema" and isinstance(obj.get("json_schema"), dict):  # a response_format
            inner = obj["json_schema"]
            return answer_schema(inner.get("schema"), name or inner.get("name"))
        import jsonschema

        try:
            jsonschema.validators.validator_for(obj).check_schema(obj)
        except jsonschema.SchemaError as exc:
            raise SchemaError(f"{name or 'the schema'} is not a valid JSON schema: {exc.message}") from None
        if obj.get("type") != "object":
            raise SchemaError(f"{name or 'the schema'} must describe an object (\"type\": \"object\"), "
                              f"not {obj.get('type')!r}")
        return AnswerSchema(name=_safe_name(name or str(obj.get("title") or "answer")), schema=obj)
    what = f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
    raise SchemaError(f"{name or 'the schema'} is {what}, not a pydantic model class or a JSON-schema dict")


def as_response_format(value: Any, field: str = "response_format") -> str | dict[str, Any] | None:
    """What a caller gave as ``response_format``, as the wire sends it: ``"text"``/``"json_object"``
    and OpenAI's dict forms (``{"type": "text" | "json_object" | "json_schema", ...}``) as they are; a
    pydantic model class or a JSON-schema dict as the strict ``json_schema`` form. Anything else
    raises :class:`SchemaError` naming ``field``."""
    if value is None or (isinstance(value, str) and value in FORMAT_TYPES[:2]):
        return value
    if isinstance(value, dict) and value.get("type") in FORMAT_TYPES:
        return value
    if isinstance(value, str):
        raise SchemaError(f"{field} {value!r} is not 'text' or 'json_object'; give a pydantic model class, a "
                          "JSON-schema dict or an OpenAI response_format dict")
    return answer_schema(value, name=None if isinstance(value, type | dict) else field).response_format


def _safe_name(name: str) -> str:
    """OpenAI's json_schema name: letters, digits, ``_`` and ``-``."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "answer"


def response_format(schema: Any) -> dict[str, Any]:
    """The ``response_format`` for a pydantic model class or a JSON-schema dict (strict json_schema)."""
    return answer_schema(schema).response_format


def _answer_text(result: Any) -> str:
    """The answer text of one batch result (v1 ``result``, v2/OpenAI ``choices[0].message.content``)."""
    body = getattr(result, "body", result)
    if isinstance(body, dict):
        if isinstance(body.get("result"), str):
            return str(body["result"])
        choices = body.get("choices")
        if isinstance(choices, list) and choices:
            content = (choices[0].get("message") or {}).get("content")
            if isinstance(content, str):
                return content
    raise ValueError(f"no answer text in {type(result).__name__}")


def _text_and_error(result: Any) -> tuple[str | None, str | None]:
    """A batch result's answer text, or why there is none (an exception as a value)."""
    if isinstance(result, BaseException):
        return None, f"{type(result).__name__}: {result}"
    try:
        return _answer_text(result), None
    except ValueError as exc:
        return None, str(exc)


def results_df(results: Iterable[Any], schema: Any) -> pd.DataFrame:
    """A batch's answers as a DataFrame: one row per input (in order), one column per schema field
    and an ``error`` column, set (and the fields empty) where a call failed or its answer did not
    parse or validate. ``results``: ``future.result()`` of ``batch_do`` (exceptions as values)."""
    import pandas as pd

    spec = schema if isinstance(schema, AnswerSchema) else answer_schema(schema)
    rows = [answer_row(spec, *_text_and_error(result)) for result in results]
    return pd.DataFrame(rows, columns=[*spec.fields, ERROR_COLUMN] if spec.fields else None)


def answer_row(spec: AnswerSchema, text: str | None, error: str | None = None) -> dict[str, Any]:
    """One DataFrame row of an answer: the schema's fields and ``error``: ``error`` when the call
    failed, else why ``text`` did not parse or validate (None when it did; the fields empty when not)."""
    row: dict[str, Any] = dict.fromkeys(spec.fields)
    if error is not None or text is None:
        row[ERROR_COLUMN] = error or "no answer"
        return row
    try:
        value = spec.validate(text)
        data = value.model_dump() if spec.model is not None else value
        row.update({k: data.get(k) for k in spec.fields} if spec.fields else data)
        row[ERROR_COLUMN] = None
    except ValueError as exc:
        row[ERROR_COLUMN] = str(exc)
    return row
