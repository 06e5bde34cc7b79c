"""``Charge`` (``/v2/charge``: TPM credit and dedicated compute units) and ``Memory``
(``/v2/memory``: an app's system memories), as the official SDK names their calls."""

from __future__ import annotations

from typing import Any

from ._base import ConsoleRequest, compact, console_api, require

__all__ = ["Charge", "Memory"]

_CHARGE = "/v2/charge"
_MEMORY = "/v2/memory"


def _charge(action: str, body: dict[str, Any]) -> ConsoleRequest:
    return ConsoleRequest(_CHARGE, body, action=action)


def _charge_tpm_credit(model: str, purchase_count: int, billing: dict[str, Any], **kwargs: Any) -> ConsoleRequest:
    """``PurchaseTPMResource``: buy TPM credit for ``model``."""
    body = {"model": require(model, "model"), "purchaseCount": require(purchase_count, "purchase_count", int),
            "billing": require(billing, "billing", dict), **kwargs}
    return _charge("PurchaseTPMResource", body)


def _tpm_credit_info(model: str, payment_type: str | None = None, instance_id: str | None = None,
                     status: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``DescribeTPMResource``."""
    body = compact({"model": require(model, "model"), "paymentTiming": payment_type if payment_type == "Postpaid"
                    else None, "instanceId": instance_id or None, "status": status or None})
    return _charge("DescribeTPMResource", body)


def _stop_tpm_credit_charging(model: str, instance_id: str, **kwargs: Any) -> ConsoleRequest:
    """``ReleaseTPMResource``."""
    return _charge("ReleaseTPMResource", {"model": require(model, "model"),
                                          "instanceId": require(instance_id, "instance_id")})


def _resize_tpm_resource(instance_id: str, count: int | None = None, **kwargs: Any) -> ConsoleRequest:
    """``ResizeTPMResource``."""
    return _charge("ResizeTPMResource", compact({"instanceId": require(instance_id, "instance_id"),
                                                 "count": count or None}))


def _auto_release_tpm_resource(instance_id: str, release_time: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``AutoReleaseTPMResource``."""
    return _charge("AutoReleaseTPMResource", compact({"instanceId": require(instance_id, "instance_id"),
                                                      "releaseTime": release_time or None}))


def _purchase_service_resource(service_id: str, billing: dict[str, Any], replicas: int,
                               **kwargs: Any) -> ConsoleRequest:
    """``PurchaseServiceResource``: dedicated compute units for a service."""
    return _charge("PurchaseServiceResource", {"serviceId": require(service_id, "service_id"),
                                               "billing": require(billing, "billing", dict),
                                               "replicasCount": require(replicas, "replicas", int)})


def _get_service_resource_list(service_id: str, payment_timing: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``DescribeComputeUnits``."""
    return _charge("DescribeComputeUnits", {"serviceId": require(service_id, "service_id"),
                                            "paymentTiming": payment_timing})


def _get_service_resource_instance_info(service_id: str, instance_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeComputeUnit``."""
    return _charge("DescribeComputeUnit", {"serviceId": require(service_id, "service_id"),
                                           "instanceId": require(instance_id, "instance_id")})


def _release_service_resource_instance_info(service_id: str, instance_id: str, **kwargs: Any) -> ConsoleRequest:
    """``ReleaseComputeUnit``."""
    return _charge("ReleaseComputeUnit", {"serviceId": require(service_id, "service_id"),
                                          "instanceId": require(instance_id, "instance_id")})


def _create_auto_renew_rules(instance_id: str, instance_type: str, auto_renew_time_unit: str | None = None,
                             auto_renew_time: int | None = None, **kwargs: Any) -> ConsoleRequest:
    """``AutoReleaseComputeUnit`` (the action the official SDK sends for renew rules)."""
    body: dict[str, Any] = {"instanceId": require(instance_id, "instance_id"),
                            "instanceType": require(instance_type, "instance_type")}
    if auto_renew_time_unit is not None and auto_renew_time is not None:
        body.update(autoRenewTimeUnit=auto_renew_time_unit, autoRenewTime=auto_renew_time)
    return _charge("AutoReleaseComputeUnit", body)


def _resize_service_resource_count(instance_id: str, count: int, **kwargs: Any) -> ConsoleRequest:
    """``ResizeComputeUnit``."""
    return _charge("ResizeComputeUnit", {"count": require(count, "count", int),
                                         "instanceId": require(instance_id, "instance_id")})


class Charge:
    """Billing console API (``/v2/charge``)."""

    charge_tpm_credit, acharge_tpm_credit = console_api(_charge_tpm_credit)
    tpm_credit_info, atpm_credit_info = console_api(_tpm_credit_info)
    stop_tpm_credit_charging, astop_tpm_credit_charging = console_api(_stop_tpm_credit_charging)
    resize_tpm_resource, aresize_tpm_resource = console_api(_resize_tpm_resource)
    auto_release_tpm_resource, aauto_release_tpm_resource = console_api(_auto_release_tpm_resource)
    purchase_service_resource, apurchase_service_resource = console_api(_purchase_service_resource)
    get_service_resource_list, aget_service_resource_list = console_api(_get_service_resource_list)
    get_service_resource_instance_info, aget_service_resource_instance_info = console_api(
        _get_service_resource_instance_info)
    release_service_resource_instance_info, arelease_service_resource_instance_info = console_api(
        _release_service_resource_instance_info)
    create_auto_renew_rules, acreate_auto_renew_rules = console_api(_create_auto_renew_rules)
    resize_service_resource_count, aresize_service_resource_count = console_api(_resize_service_resource_count)


def _memory(action: str, body: dict[str, Any]) -> ConsoleRequest:
    return ConsoleRequest(_MEMORY, body, action=action)


def _create_system_memory(app_id: str, description: str, **kwargs: Any) -> ConsoleRequest:
    """``CreateSystemMemory`` for app ``app_id``."""
    return _memory("CreateSystemMemory", {**kwargs, "appId": require(app_id, "app_id"), "description": description})


def _describe_system_memories(app_id: str | None = None, marker: str | None = None, max_keys: int | None = None,
                              **kwargs: Any) -> ConsoleRequest:
    """``DescribeSystemMemories``."""
    return _memory("DescribeSystemMemories", {**kwargs, **compact({"appId": app_id or None, "marker": marker or None,
                                                                   "maxKeys": max_keys or None})})


def _delete_system_memory(system_memory_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DeleteSystemMemory``."""
    return _memory("DeleteSystemMemory", {**kwargs, "systemMemoryId": require(system_memory_id, "system_memory_id")})


def _describe_system_memory(system_memory_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeSystemMemory``."""
    return _memory("DescribeSystemMemory", {**kwargs, "systemMemoryId": require(system_memory_id, "system_memory_id")})


def _modify_system_memory(system_memory_id: str, memories: list[Any], **kwargs: Any) -> ConsoleRequest:
    """``ModifySystemMemory``: replace the memories."""
    return _memory("ModifySystemMemory", {**kwargs, "systemMemoryId": require(system_memory_id, "system_memory_id"),
                                          "memories": require(memories, "memories", list)})


class Memory:
    """System-memory console API (``/v2/memory``)."""

    create_system_memory, acreate_system_memory = console_api(_create_system_memory)
    describe_system_memories, adescribe_system_memories = console_api(_describe_system_memories)
    delete_system_memory, adelete_system_memory = console_api(_delete_system_memory)
    describe_system_memory, adescribe_system_memory = console_api(_describe_system_memory)
    modify_system_memory, amodify_system_memory = console_api(_modify_system_memory)
