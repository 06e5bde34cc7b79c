"""The lenient base of the typed answers (:mod:`qfnb.protocol.wires.qianfan.answers`, generated from the spec).

An answer model reads a platform answer as it came and never fails on it: every field has a
default (the platform omits fields by model and version), unknown fields are kept
(``extra="allow"``: ``model_extra``), and a field whose value has an unexpected shape (a string
where a number was documented, a list item that is not an object) is read as its default, its
name logged at debug level. The raw dict stays the source of truth (``resp.body``); the model is
a typed view of what it could read.
"""

from __future__ import annotations

import logging
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, ValidationError, model_validator

__all__ = ["AnswerModel"]

logger = logging.getLogger("qfnb.answers")


class AnswerModel(BaseModel):
    """A platform answer (or a part of one), read leniently: see the module's docstring."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="wrap")
    @classmethod
    def _lenient(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise  # not an object at all: the field holding it is read as its default, one level up
            unread = {err["loc"][0] for err in exc.errors() if err["loc"]}
            logger.debug("%s: %s not as documented, read as default (the raw value is in the body)",
                         cls.__name__, ", ".join(sorted(map(str, unread))))
            return handler({k: v for k, v in data.items() if k not in unread})
