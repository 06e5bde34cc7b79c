"""The local BOS's calls beside an object's PUT/GET/append (``app.bos_object``): DeleteObject,
CopyObject (``PUT`` with ``x-bce-copy-source``), and on ``/bos/{bucket}`` ListObjects and
GetBucketLocation (``?location``). Every call is bce-auth-v1 signed, as on the cloud."""

from __future__ import annotations

from email.utils import formatdate
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qfnb.local.domain.platform import Platform
from qfnb.local.domain.state import bucket as objects
from qfnb.local.server.middleware.auth import authenticator
from qfnb.local.server.serving.wire import bce_error

COPY_SOURCE = "x-bce-copy-source"


async def delete_object(platform: Platform, bucket: str, key: str) -> Response:
    try:
        found = await run_in_threadpool(objects.delete, platform.objects, bucket, key)
    except ValueError as exc:
        return bce_error(400, "InvalidObjectName", str(exc))
    if not found:
        return bce_error(404, "NoSuchKey", "The specified key does not exist.")
    return Response(status_code=204)


async def copy_object(platform: Platform, request: Request, bucket: str, key: str) -> Response:
    """``x-bce-copy-source: /bucket/key`` (URL-encoded) copied to ``bucket``/``key``."""
    src_bucket, _, src_key = unquote(request.headers[COPY_SOURCE]).lstrip("/").partition("/")
    try:
        target = await run_in_threadpool(objects.copy, platform.objects, (src_bucket, src_key), bucket, key)
    except ValueError as exc:
        return bce_error(400, "InvalidObjectName", str(exc))
    except FileNotFoundError:
        return bce_error(404, "NoSuchKey", "The copy source does not exist.")
    except (NotADirectoryError, IsADirectoryError, FileExistsError):
        return bce_error(409, "ObjectConflict", "the key conflicts with an existing object or folder")
    stat = target.stat()
    return JSONResponse({"eTag": str(stat.st_size), "lastModified": formatdate(stat.st_mtime, usegmt=True)})


async def delete_or_copy(platform: Platform, request: Request) -> Response | None:
    """An object's ``DELETE``, or a ``PUT`` that copies; None for the other calls."""
    bucket, key = request.path_params["bucket"], request.path_params["key"]
    if request.method == "DELETE":
        return await delete_object(platform, bucket, key)
    if request.method == "PUT" and COPY_SOURCE in request.headers:
        return await copy_object(platform, request, bucket, key)
    return None


async def bucket_root(request: Request) -> Response:
    """``GET /bos/{bucket}``: ``?location`` gives the region, otherwise the listing."""
    if (failure := authenticator(request).check_console(request)) is not None:
        return failure
    platform: Platform = request.app.state.platform
    name = request.path_params["bucket"]
    if "location" in request.query_params:
        return JSONResponse({"locationConstraint": objects.REGION})
    query = request.query_params
    try:
        max_keys = min(int(query.get("maxKeys") or objects.MAX_KEYS), objects.MAX_KEYS)
    except ValueError:
        return bce_error(400, "InvalidArgument", "maxKeys must be a whole number")
    try:
        found = await run_in_threadpool(lambda: objects.listing(
            platform.objects, name, prefix=query.get("prefix") or "", delimiter=query.get("delimiter") or "",
            marker=query.get("marker") or "", max_keys=max(1, max_keys)))
    except ValueError as exc:
        return bce_error(400, "InvalidBucketName", str(exc))
    return JSONResponse(found)


def routes() -> list[Route]:
    return [Route("/bos/{bucket}", bucket_root, methods=["GET"])]
