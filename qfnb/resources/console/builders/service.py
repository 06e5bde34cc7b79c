"""``Service``: v1 service apply/detail/list and ``Service.V2`` (``/v2/service``)."""

from __future__ import annotations

from typing import Any

from qfnb.protocol.wires.qianfan.routes import API_TYPES, Console, V2Action

from ..consts import DeployPoolType
from ..sending.sender import ConsoleRequest, compact, invalid, require, require_id, surface

#: the classes the ``@surface`` builders below are exposed on (``../service.py``, generated), with their docs
CLASSES = {
    "Service": "Service console API (v1); ``Service.V2`` for ``/v2/service``.",
    "Service.V2": "``/v2/service``.",
}


@surface("Service.create", answer="ServiceV1CreatedAnswer")
def create(model_id: int | str, model_version_id: int | str, name: str, uri: str,
            replicas: int = 1, pool_type: int | DeployPoolType = DeployPoolType.PrivateResource,
            description: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``service/apply``: deploy a model version as a service reachable at ``uri``."""
    require_id(model_id, "model_id")
    require_id(model_version_id, "model_version_id")
    require(name, "name")
    require(uri, "uri")
    require(replicas, "replicas", int)
    if replicas < 1:
        raise invalid("replicas", "must be >= 1")
    if int(pool_type) not in (1, 2):
        raise invalid("pool_type", "must be 1 (public) or 2 (private)")
    body = compact({"modelId": model_id, "modelVersionId": model_version_id, "name": name,
                    "uri": uri, "replicas": replicas, "poolType": int(pool_type),
                    "description": description, **kwargs})
    return ConsoleRequest(Console.SERVICE_APPLY, body)


@surface("Service.get", answer="ServiceV1Answer")
def get(id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``service/detail``."""
    return ConsoleRequest(Console.SERVICE_DETAIL, {"serviceId": require_id(id, "id"), **kwargs})


@surface("Service.list")
def list_services(api_type_filter: list[str] | None = None, **kwargs: Any) -> ConsoleRequest:
    """``service/list``: preset (``common``) and user (``custom``) services."""
    body: dict[str, Any] = dict(kwargs)
    if api_type_filter is not None:
        types = [str(getattr(t, "value", t)) for t in api_type_filter]
        bad = [t for t in types if t not in API_TYPES]
        if bad:
            raise invalid("api_type_filter", f"unknown api type(s) {bad}; known: {list(API_TYPES)}")
        body["apiTypefilter"] = types
    return ConsoleRequest(Console.SERVICE_LIST, body)


@surface("Service.V2.create_service", answer="ServiceCreatedAnswer")
def v2_create_service(model_set_id: str, model_id: str, name: str, url_suffix: str,
                       resource_config: dict[str, Any] | None = None,
                       billing: dict[str, Any] | None = None, description: str | None = None,
                       **kwargs: Any) -> ConsoleRequest:
    """``CreateService``: deploy a v2 model as a service at ``.../{url_suffix}``."""
    require(model_set_id, "model_set_id")
    require(model_id, "model_id")
    require(name, "name")
    require(url_suffix, "url_suffix")
    resources = resource_config or {"type": "GPU-I-2", "replicasCount": 1}
    replicas = resources.get("replicasCount", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise invalid("resource_config.replicasCount", "must be an int >= 1")
    bill = billing or {"paymentTiming": "Prepaid",
                       "reservation": {"reservationTimeUnit": "Hour", "reservationLength": 1}}
    body = compact({"modelSetId": model_set_id, "modelId": model_id, "name": name,
                    "urlSuffix": url_suffix, "description": description,
                    "resourceConfig": resources, "billing": bill, **kwargs})
    return ConsoleRequest(Console.V2_SERVICE, body, action=V2Action.CREATE_SERVICE)


@surface("Service.V2.service_detail", answer="ServiceV2Answer")
def v2_service_detail(service_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeService``: ``runStatus`` and ``url`` of a service."""
    body = {"serviceId": require(service_id, "service_id"), **kwargs}
    return ConsoleRequest(Console.V2_SERVICE, body, action=V2Action.DESCRIBE_SERVICE)


@surface("Service.V2.service_list", answer="ServiceV2ListAnswer")
def v2_service_list(marker: str | None = None, max_keys: int | None = None,
                     page_reverse: bool | None = None, name: str | None = None,
                     service_type: list[str] | None = None, run_status: list[str] | None = None,
                     **kwargs: Any) -> ConsoleRequest:
    """``DescribeServices``."""
    body = compact({"marker": marker, "maxKeys": max_keys, "pageReverse": page_reverse,
                    "name": name, "serviceType": service_type, "runStatus": run_status, **kwargs})
    return ConsoleRequest(Console.V2_SERVICE, body, action=V2Action.DESCRIBE_SERVICES)
