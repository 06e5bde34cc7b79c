"""Service enumerations; ``from qfnb.model.consts import ServiceType`` (official SDK import path).

They live in the model layer (``qfnb.trainer.consts`` re-exports them), so ``qfnb.model`` never
imports the trainer, which sits above it.
"""

from __future__ import annotations

from enum import StrEnum as _StrEnum

__all__ = ["ServiceStatus", "ServiceType"]


class ServiceStatus(_StrEnum):
    Unknown = "Unknown"
    Created = "Created"
    Deploying = "Deploying"
    Deployed = "Deployed"
    DeployFailed = "DeployFailed"
    DeployStopped = "DeployStopped"


class ServiceType(_StrEnum):
    """What a deployed service behaves like (``Service.get_res()``)."""

    Chat = "Chat"
    Completion = "Completion"
    Embedding = "Embedding"
    Text2Image = "Text2Image"
