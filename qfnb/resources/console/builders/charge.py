"""``Charge`` (``/v2/charge``: TPM credit and dedicated compute units) and ``Memory``
(``/v2/memory``: an app's system memories), as the official SDK names their calls."""

from __future__ import annotations

from typing import Any

from ..sending.sender import ConsoleRequest, compact, require, surface

#: the classes the ``@surface`` builders below are exposed on (generated), with their docs
CLASSES = {
    "Charge": "Billing console API (``/v2/charge``).",
    "Memory": "System-memory console API (``/v2/memory``).",
}


_CHARGE = "/v2/charge"
_MEMORY = "/v2/memory"


def _charge(action: str, body: dict[str, Any]) -> ConsoleRequest:
    return ConsoleRequest(_CHARGE, body, action=action)


@surface("Charge.charge_tpm_credit")
def charge_tpm_credit(model: str, purchase_count: int, billing: dict[str, Any], **kwargs: Any) -> ConsoleRequest:
    """``PurchaseTPMResource``: buy TPM credit for ``model``."""
    body = {"model": require(model, "model"), "purchaseCount": require(purchase_count, "purchase_count", int),
            "billing": require(billing, "billing", dict), **kwargs}
    return _charge("PurchaseTPMResource", body)


@surface("Charge.tpm_credit_info")
def tpm_credit_info(model: str, payment_type: str | None = None, instance_id: str | None = None,
                    status: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``DescribeTPMResource``."""
    body = compact({"model": require(model, "model"), "paymentTiming": payment_type if payment_type == "Postpaid"
                    else None, "instanceId": instance_id or None, "status": status or None})
    return _charge("DescribeTPMResource", body)


@surface("Charge.stop_tpm_credit_charging")
def stop_tpm_credit_charging(model: str, instance_id: str, **kwargs: Any) -> ConsoleRequest:
    """``ReleaseTPMResource``."""
    return _charge("ReleaseTPMResource", {"model": require(model, "model"),
                                          "instanceId": require(instance_id, "instance_id")})


@surface("Charge.resize_tpm_resource")
def resize_tpm_resource(instance_id: str, count: int | None = None, **kwargs: Any) -> ConsoleRequest:
    """``ResizeTPMResource``."""
    return _charge("ResizeTPMResource", compact({"instanceId": require(instance_id, "instance_id"),
                                                 "count": count or None}))


@surface("Charge.auto_release_tpm_resource")
def auto_release_tpm_resource(instance_id: str, release_time: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``AutoReleaseTPMResource``."""
    return _charge("AutoReleaseTPMResource", compact({"instanceId": require(instance_id, "instance_id"),
                                                      "releaseTime": release_time or None}))


@surface("Charge.purchase_service_resource")
def purchase_service_resource(service_id: str, billing: dict[str, Any], replicas: int,
                              **kwargs: Any) -> ConsoleRequest:
    """``PurchaseServiceResource``: dedicated compute units for a service."""
    return _charge("PurchaseServiceResource", {"serviceId": require(service_id, "service_id"),
                                               "billing": require(billing, "billing", dict),
                                               "replicasCount": require(replicas, "replicas", int)})


@surface("Charge.get_service_resource_list")
def get_service_resource_list(service_id: str, payment_timing: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``DescribeComputeUnits``."""
    return _charge("DescribeComputeUnits", {"serviceId": require(service_id, "service_id"),
                                            "paymentTiming": payment_timing})


@surface("Charge.get_service_resource_instance_info")
def get_service_resource_instance_info(service_id: str, instance_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeComputeUnit``."""
    return _charge("DescribeComputeUnit", {"serviceId": require(service_id, "service_id"),
                                           "instanceId": require(instance_id, "instance_id")})


@surface("Charge.release_service_resource_instance_info")
def release_service_resource_instance_info(service_id: str, instance_id: str, **kwargs: Any) -> ConsoleRequest:
    """``ReleaseComputeUnit``."""
    return _charge("ReleaseComputeUnit", {"serviceId": require(service_id, "service_id"),
                                          "instanceId": require(instance_id, "instance_id")})


@surface("Charge.create_auto_renew_rules")
def create_auto_renew_rules(instance_id: str, instance_type: str, auto_renew_time_unit: str | None = None,
                            auto_renew_time: int | None = None, **kwargs: Any) -> ConsoleRequest:
    """``AutoReleaseComputeUnit`` (the action the official SDK sends for renew rules)."""
    body: dict[str, Any] = {"instanceId": require(instance_id, "instance_id"),
                            "instanceType": require(instance_type, "instance_type")}
    if auto_renew_time_unit is not None and auto_renew_time is not None:
        body.update(autoRenewTimeUnit=auto_renew_time_unit, autoRenewTime=auto_renew_time)
    return _charge("AutoReleaseComputeUnit", body)


@surface("Charge.resize_service_resource_count")
def resize_service_resource_count(instance_id: str, count: int, **kwargs: Any) -> ConsoleRequest:
    """``ResizeComputeUnit``."""
    return _charge("ResizeComputeUnit", {"count": require(count, "count", int),
                                         "instanceId": require(instance_id, "instance_id")})


def _memory(action: str, body: dict[str, Any]) -> ConsoleRequest:
    return ConsoleRequest(_MEMORY, body, action=action)


@surface("Memory.create_system_memory")
def create_system_memory(app_id: str, description: str, **kwargs: Any) -> ConsoleRequest:
    """``CreateSystemMemory`` for app ``app_id``."""
    return _memory("CreateSystemMemory", {**kwargs, "appId": require(app_id, "app_id"), "description": description})


@surface("Memory.describe_system_memories")
def describe_system_memories(app_id: str | None = None, marker: str | None = None, max_keys: int | None = None,
                             **kwargs: Any) -> ConsoleRequest:
    """``DescribeSystemMemories``."""
    return _memory("DescribeSystemMemories", {**kwargs, **compact({"appId": app_id or None, "marker": marker or None,
                                                                   "maxKeys": max_keys or None})})


@surface("Memory.delete_system_memory")
def delete_system_memory(system_memory_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DeleteSystemMemory``."""
    return _memory("DeleteSystemMemory", {**kwargs, "systemMemoryId": require(system_memory_id, "system_memory_id")})


@surface("Memory.describe_system_memory")
def describe_system_memory(system_memory_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeSystemMemory``."""
    return _memory("DescribeSystemMemory", {**kwargs, "systemMemoryId": require(system_memory_id, "system_memory_id")})


@surface("Memory.modify_system_memory")
def modify_system_memory(system_memory_id: str, memories: list[Any], **kwargs: Any) -> ConsoleRequest:
    """``ModifySystemMemory``: replace the memories."""
    return _memory("ModifySystemMemory", {**kwargs, "systemMemoryId": require(system_memory_id, "system_memory_id"),
                                          "memories": require(memories, "memories", list)})
