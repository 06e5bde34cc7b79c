"""``GET /v1/models`` and ``/v2/models`` (and ``…/models/{id}``): the served chat models in the OpenAI API's
list shape, so the ``openai`` SDK's ``client.models.list()`` (base URL ``…/v1`` or ``…/v2``) sees every model,
added ones too. Each entry carries ``digest`` (what answers under the name: weights, adapter, engine);
``…/models/{id}`` also finds a name the inference routes resolve (an alias, a cloud model's name), so a
client keys its response cache on what would answer."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state.values import BodyError
from qfnb.local.engines.api import ServedLike
from qfnb.local.server.middleware.openai_errors import openai_error
from qfnb.protocol.wires.qianfan.routes import API_TYPES

_STARTED = int(time.time())


def _entry(model: ServedLike, created: int) -> dict[str, Any]:
    return {"id": model.name, "object": "model", "created": created, "owned_by": "qfnb-local",
            "api_types": list(model.api_types), "digest": model.digest}


async def list_models(request: Request) -> Response:
    problem = request.app.state.auth.check_bearer(request)
    if problem is not None:
        return openai_error(401, problem, code="invalid_iam_token")
    platform: Platform = request.app.state.platform
    data = [_entry(m, _STARTED) for m in platform.served()]
    wanted = request.path_params.get("model_id")
    if wanted is None:
        return JSONResponse({"object": "list", "data": data})
    api = request.query_params.get("api_type")
    found = (next((d for d in data if d["id"].lower() == str(wanted).lower()), None)
             or _resolved(platform, wanted, (api,) if api in API_TYPES else API_TYPES))
    if found is None:
        served = ", ".join(d["id"] for d in data)
        return openai_error(404, f"The model {wanted!r} does not exist (served: {served})", param="model",
                            code="model_not_found")
    return JSONResponse(found)


def _resolved(platform: Platform, wanted: str, api_types: tuple[str, ...]) -> dict[str, Any] | None:
    """The entry of the model the inference routes would answer ``wanted`` with, under ``wanted``."""
    for api_type in api_types:
        try:
            model = platform.resolve(api_type, wanted)
        except BodyError:
            continue
        return {**_entry(model, _STARTED), "id": wanted, "served_by": model.name}
    return None


def routes() -> list[Route]:
    return [route for prefix in ("/v1", "/v2") for route in (
        Route(prefix + "/models", list_models, methods=["GET"]),
        Route(prefix + "/models/{model_id:path}", list_models, methods=["GET"]))]
