"""The console's services: a model version registered as a chat endpoint (deployed in a thread)."""

from __future__ import annotations

import threading
from typing import Any

from qfnb.local.domain.state.site import TrainingSite, get
from qfnb.local.domain.state.values import BodyError, NotFound, check_name
from qfnb.protocol.console.enums import ServiceStatus


def create_service(platform: TrainingSite, *, model_id: Any, version_id: Any, name: Any, uri: Any) -> dict[str, Any]:
    """Register a model version as a chat endpoint; Deploying now, Serving once registered."""
    version = get(platform, "versions", version_id, "modelVersionId")
    if model_id is not None and platform.store.get("models", model_id) is None:
        raise NotFound(f"modelId {model_id!r} not found")
    check_name("name", name)
    check_name("uri", uri, suffix=True)
    taken = {m.endpoint.lower() for m in platform.served()}
    if uri.lower() in taken:
        raise BodyError("uri", f"endpoint {uri!r} is already in use")
    svc = platform.store.insert("services", {"name": name, "uri": uri, "modelId": version["modelId"],
                                             "modelVersionId": version["id"], "status": ServiceStatus.DEPLOYING.value})
    deploying = threading.Thread(target=platform.deploy, args=(svc,), name="qfnb-deploy", daemon=True)
    platform.store.after_commit(deploying.start)  # a keyed create's: once the service is stored
    return svc


