"""``Model``'s repository listings (preset and user models) and batch deletes; a generated mixin
``Model`` subclasses."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.wires.qianfan.routes import Console

from ..sending.sender import ConsoleRequest, paged, require, surface


@surface("Model.preset_list")
def preset_list(name_filter: str | None = None, model_type: list[int] | None = None,
                model_version_vendor: list[str] | None = None, ctx_length: list[str] | None = None,
                language_support: list[str] | None = None, expansion: list[str] | None = None,
                order_by: str | None = None, page_no: int = 1, page_size: int = 20, **kwargs: Any) -> ConsoleRequest:
    """``model/preset/list``: the platform's preset models."""
    body = paged(page_no, page_size, nameFilter=name_filter, modelType=model_type,
                 modelVersionVendor=model_version_vendor, ctxLength=ctx_length,
                 languageSupport=language_support, expansion=expansion, orderBy=order_by)
    return ConsoleRequest(Console.MODEL_PRESET_LIST, {**body, **kwargs})


@surface("Model.user_list")
def user_list(name_filter: str | None = None, model_type: list[int] | None = None, order_by: str | None = None,
              order: str | None = None, page_no: int = 1, page_size: int = 20, **kwargs: Any) -> ConsoleRequest:
    """``model/user/list``: your own models."""
    body = paged(page_no, page_size, nameFilter=name_filter, modelType=model_type, orderBy=order_by, order=order)
    return ConsoleRequest(Console.MODEL_USER_LIST, {**body, **kwargs})


@surface("Model.batch_delete_model")
def batch_delete_model(model_ids: list[int] | list[str], **kwargs: Any) -> ConsoleRequest:
    """``model/batchDelete``."""
    return ConsoleRequest(Console.MODEL_BATCH_DELETE, {"modelIDs": require(model_ids, "model_ids", list), **kwargs})


@surface("Model.batch_delete_model_version")
def batch_delete_model_version(model_version_ids: list[int] | list[str], **kwargs: Any) -> ConsoleRequest:
    """``model/version/batchDelete``."""
    body = {"modelVersionIds": require(model_version_ids, "model_version_ids", list), **kwargs}
    return ConsoleRequest(Console.MODEL_VERSION_BATCH_DELETE, body)
