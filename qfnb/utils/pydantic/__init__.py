"""The official SDK's ``qianfan.utils.pydantic``: pydantic's own names (qfnb uses pydantic 2).
An official-SDK mirror: imports pydantic only; no layer imports it."""

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BaseModel", "ConfigDict", "Field", "model_validator"]
