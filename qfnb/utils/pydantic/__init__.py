"""The official SDK's ``qianfan.utils.pydantic``: pydantic's own names (qfnb uses pydantic 2)."""

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BaseModel", "ConfigDict", "Field", "model_validator"]
