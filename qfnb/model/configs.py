"""``DeployConfig``: how to deploy a model as a service (``qfnb.trainer.configs`` re-exports it)."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qfnb._core.errors import ValidationError as QfValidationError
from qfnb.resources.console.consts import DeployPoolType

from .consts import ServiceType

__all__ = ["ConfigModel", "DeployConfig", "raise_first_error"]

logger = logging.getLogger("qfnb")


def raise_first_error(exc: ValidationError) -> None:
    """Re-raise pydantic's first error as qfnb's ValidationError naming the field."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "config"
    raise QfValidationError(field, err["msg"]) from None


class ConfigModel(BaseModel):
    """Base of qfnb's config models: a bad field raises qfnb's ValidationError naming it.

    As the official pydantic models take them, ``None`` means the default and an unknown field
    is ignored — with one warning naming it, where the official SDK says nothing.
    """

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **data: Any) -> None:
        known = set(type(self).model_fields)
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            logger.warning("%s: ignoring unknown field(s) %s", type(self).__name__, ", ".join(unknown))
        try:
            super().__init__(**{k: v for k, v in data.items() if k in known and v is not None})
        except ValidationError as exc:
            raise_first_error(exc)


class DeployConfig(ConfigModel):
    """How to deploy a model as a service."""

    model_config = ConfigDict(extra="ignore", use_enum_values=False)

    name: str = ""
    endpoint_suffix: str = ""
    endpoint_prefix: str = ""
    description: str = ""
    replicas: int = Field(1, ge=1, le=100)
    pool_type: DeployPoolType = DeployPoolType.PrivateResource
    service_type: ServiceType = ServiceType.Chat
    hours: int = Field(1, ge=1)
    #: prepaid months; when set it wins over ``hours`` (as in the official SDK)
    months: int | None = Field(None, ge=1)
    resource_type: str = "GPU-I-2"
    qps: float | None = Field(None, gt=0)
    #: which of a fine-tune's checkpoints is published and deployed: "best" (the lowest held-out loss,
    #: or the best metric), "last", or a step; a run without checkpoints deploys its final adapter
    checkpoint: int | str = "best"
    extras: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:  # keeps the keyword-only, validated signature for type checkers
        super().__init__(**data)

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint(cls, value: int | str) -> int | str:
        text = str(value).removeprefix("step-")
        if isinstance(value, bool) or (value not in ("best", "last") and not (text.isdigit() and int(text) > 0)):
            raise ValueError(f"must be 'best', 'last' or a step number, got {value!r}")
        return value if value in ("best", "last") else int(text)

    @field_validator("endpoint_suffix", "endpoint_prefix")
    @classmethod
    def _suffix(cls, value: str) -> str:
        if value and not all(c.isalnum() or c in "_-" for c in value):
            raise ValueError("may contain only letters, digits, '_' and '-'")
        return value
