"""Objects in BOS over qfnb's own calls (the official SDK's ``qianfan.utils.bos_uploader``,
which :mod:`qfnb.utils.bos_uploader` re-exports).

Each call is BOS's REST call, bce-auth-v1 signed with the IAM keys (``ACCESS_KEY``/``SECRET_KEY``)
by qfnb's client, sent to the config's ``bos_endpoint``: the cloud's
``https://<region>.bcebos.com`` or the embedded local platform's ``<base_url>/bos``. The async
methods (``a`` + the official name) do the work; the official sync names are thin shells over them.
Object keys are given with or without their leading ``/`` (the official SDK drops it too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from qfnb._core.config import global_settings, resolve_config
from qfnb._core.errors import QfnbError, ValidationError
from qfnb._core.http.auth import host_of
from qfnb._core.http.client import get_client
from qfnb._core.runtime import sync
from qfnb.protocol.wires.qianfan.signing import sign, uri_encode

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config
    from qfnb._core.http.response import QfResponse

__all__ = ["BosHelper", "BosObject", "generate_bos_file_parent_path", "generate_bos_file_path",
           "is_valid_bos_path", "parse_bos_path"]

log = logging.getLogger("qfnb")

#: a shared link stays good this long (the official SDK's BOS default)
SHARED_URL_EXPIRATION_S = 1800
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_CLOUD_ENDPOINT = re.compile(r"^https?://[a-z0-9-]+\.bcebos\.com/?$")


@dataclass(frozen=True)
class BosObject:
    """One entry of :meth:`BosHelper.list_dir` (the official listing's attribute names)."""

    key: str
    size: int = 0
    last_modified: str = ""
    etag: str = ""
    is_dir: bool = False


def _bucket(bucket: Any, field: str = "bucket_name") -> str:
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise ValidationError(field, f"a BOS bucket name is required (letters, digits, '.', '_', '-'), got {bucket!r}")
    return bucket


def _key(path: Any, field: str = "remote_file_path") -> str:
    """The object key of ``path`` (its leading ``/`` dropped); refused when empty or unsafe."""
    if not isinstance(path, str):
        raise ValidationError(field, f"must be a str object path, got {type(path).__name__}")
    key = path.lstrip("/")
    if not key or "\x00" in key or ".." in key.split("/"):
        raise ValidationError(field, f"must be an object path with no '..' or NUL in it, got {path!r}")
    return key


def _global_region() -> str | None:
    """``get_config().BOS_HOST_REGION`` when the user set it."""
    region = global_settings().get("BOS_HOST_REGION")
    return str(region) if region else None


class BosHelper:
    """Put, read, share and delete BOS objects: ``BosHelper(region, ak, sk)``, as the official SDK.

    ``ak``/``sk`` are the IAM access key and secret key (default: the configured ones).
    ``region`` picks ``https://<region>.bcebos.com`` when the configured endpoint is a cloud BOS
    one; the local platform's BOS has no regions. ``config=`` is qfnb's (the environment's by default).
    """

    def __init__(self, region: str | None = None, ak: str | None = None, sk: str | None = None, *,
                 config: Config | None = None) -> None:
        keys = {name: value for name, value in (("access_key", ak), ("secret_key", sk)) if value}
        cfg = resolve_config(config, **keys)
        region = region or _global_region()
        if region and _CLOUD_ENDPOINT.match(cfg.bos_endpoint):
            cfg = cfg.with_overrides(bos_endpoint=f"https://{region}.bcebos.com")
        self.region = region
        self.config = cfg

    def __repr__(self) -> str:
        return f"BosHelper(endpoint={self.config.bos_endpoint!r})"

    # ---- the wire ---------------------------------------------------------------------------

    def _url(self, bucket: str, key: str = "") -> str:
        tail = f"/{uri_encode(key, encode_slash=False)}" if key else ""
        return f"{self.config.bos_endpoint.rstrip('/')}/{bucket}{tail}"

    async def _send(self, method: str, bucket: str, key: str = "", **kwargs: Any) -> QfResponse:
        self.require_keys()
        return await get_client(self.config).signed_request(method, self._url(bucket, key), **kwargs)

    def require_keys(self) -> None:
        """BOS calls are signed with the IAM keys: refused before anything is sent without them."""
        if not (self.config.access_key and self.config.secret_key):
            raise ValidationError("ak", "BOS calls are signed with the IAM access key and secret key; set "
                                  "QIANFAN_ACCESS_KEY/QIANFAN_SECRET_KEY or pass ak=/sk=")

    # ---- async work -------------------------------------------------------------------------

    async def aupload_content_to_bos(self, data: str | bytes, remote_file_path: str, bucket_name: str) -> None:
        """Put ``data`` (text is sent as UTF-8) as the object ``remote_file_path``."""
        key, bucket = _key(remote_file_path), _bucket(bucket_name)
        if not isinstance(data, str | bytes):
            raise ValidationError("data", f"must be str or bytes, got {type(data).__name__}")
        body = data.encode("utf-8") if isinstance(data, str) else data
        await self._send("PUT", bucket, key, content=body)
        log.info("put %d bytes to bos:/%s/%s", len(body), bucket, key)

    async def aupload_file_to_bos(self, file_path: str, remote_file_path: str, bucket_name: str) -> None:
        """Put the local file ``file_path`` as the object ``remote_file_path``."""
        key, bucket = _key(remote_file_path), _bucket(bucket_name)
        path = Path(file_path)
        if not path.is_file():
            raise ValidationError("file_path", f"no such file: {file_path}")
        await self.aupload_content_to_bos(await asyncio.to_thread(path.read_bytes), key, bucket)

    async def aget_metadata(self, bucket: str, file_path: str) -> dict[str, Any]:
        """The object's metadata (``HEAD``): ``content_length``, ``content_type``, ``etag``,
        ``last_modified`` (as BOS sends it), and any ``x-bce-*`` header without its prefix."""
        got = await self._send("HEAD", _bucket(bucket, "bucket"), _key(file_path, "file_path"))
        headers = {k.lower(): v for k, v in got.headers.items()}
        meta: dict[str, Any] = {k[6:].replace("-", "_"): v for k, v in headers.items() if k.startswith("x-bce-")}
        meta.update(content_length=int(headers.get("content-length") or 0),
                    content_type=headers.get("content-type", ""), etag=headers.get("etag", "").strip('"'),
                    last_modified=headers.get("last-modified", ""))
        return meta

    async def aget_object_as_file(self, bucket: str, bos_path: str, local_path: str) -> None:
        """Write the object's bytes to ``local_path``."""
        got = await self._send("GET", _bucket(bucket, "bucket"), _key(bos_path, "bos_path"))
        body = got.body
        data = body.get("_bytes") if isinstance(body, dict) else None
        if not isinstance(data, bytes):  # an object whose type says JSON was read as one
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        await asyncio.to_thread(Path(local_path).write_bytes, data)

    async def acheck_if_file_existed_on_bos(self, bucket: str, bos_file_path: str) -> bool:
        try:
            await self.aget_metadata(bucket, bos_file_path)
        except QfnbError:
            return False
        return True

    async def adelete_bos_file_anyway(self, bucket: str, bos_file_path: str) -> None:
        """Delete the object; a missing one (or a failed delete) is not an error, as in the official SDK."""
        bucket, key = _bucket(bucket, "bucket"), _key(bos_file_path, "bos_file_path")
        try:
            await self._send("DELETE", bucket, key)
        except QfnbError as exc:
            log.info("delete of bos:/%s/%s ignored: %s", bucket, key, exc)

    async def acopy_object(self, bucket: str, source_path: str, destination_path: str) -> None:
        """BOS ``CopyObject`` within ``bucket``."""
        bucket, src = _bucket(bucket, "bucket"), _key(source_path, "source_path")
        dst = _key(destination_path, "destination_path")
        await self._send("PUT", bucket, dst, headers={"x-bce-copy-source": quote(f"/{bucket}/{src}")})

    async def alist_dir(self, bucket: str, bos_file_path: str, only_deep1: bool = True) -> list[BosObject]:
        """The objects under the prefix ``bos_file_path`` (with ``only_deep1``, its direct children:
        deeper ones are rolled up into ``is_dir`` entries); every page of the listing."""
        params = {"prefix": bos_file_path.lstrip("/"), **({"delimiter": "/"} if only_deep1 else {})}
        out: list[BosObject] = []
        while True:
            body = (await self._send("GET", _bucket(bucket, "bucket"), params=params)).body
            out += [BosObject(str(c["key"]), int(c.get("size") or 0), str(c.get("lastModified") or ""),
                              str(c.get("eTag") or "")) for c in body.get("contents") or []]
            out += [BosObject(str(p["prefix"]), is_dir=True) for p in body.get("commonPrefixes") or []]
            if not body.get("isTruncated") or not body.get("nextMarker"):
                return out
            params = {**params, "marker": str(body["nextMarker"])}

    async def aget_bos_bucket_location(self, bucket_name: str) -> str:
        body = (await self._send("GET", _bucket(bucket_name), params={"location": ""})).body
        return str(body.get("locationConstraint") or "")

    # ---- the official sync names --------------------------------------------------------------

    def upload_content_to_bos(self, data: str | bytes, remote_file_path: str, bucket_name: str) -> None:
        """Put ``data`` as the object ``remote_file_path`` in ``bucket_name``."""
        return sync.run(self.aupload_content_to_bos(data, remote_file_path, bucket_name))

    def upload_file_to_bos(self, file_path: str, remote_file_path: str, bucket_name: str) -> None:
        """Put the local file ``file_path`` as the object ``remote_file_path`` in ``bucket_name``."""
        return sync.run(self.aupload_file_to_bos(file_path, remote_file_path, bucket_name))

    def get_metadata(self, bucket: str, file_path: str) -> dict[str, Any]:
        return sync.run(self.aget_metadata(bucket, file_path))

    def get_object_as_file(self, bucket: str, bos_path: str, local_path: str) -> None:
        return sync.run(self.aget_object_as_file(bucket, bos_path, local_path))

    def check_if_file_existed_on_bos(self, bucket: str, bos_file_path: str) -> bool:
        return sync.run(self.acheck_if_file_existed_on_bos(bucket, bos_file_path))

    def get_file_size(self, bucket: str, bos_file_path: str) -> float:
        """The object's size in bytes; 0 when it cannot be read."""
        try:
            return int(self.get_metadata(bucket, bos_file_path)["content_length"])
        except QfnbError:
            return 0

    def is_dir(self, bucket: str, bos_path: str) -> bool:
        """True unless ``bos_path`` is an object (the official test)."""
        return not self.check_if_file_existed_on_bos(bucket, bos_path)

    def delete_bos_file_anyway(self, bucket: str, bos_file_path: str) -> None:
        return sync.run(self.adelete_bos_file_anyway(bucket, bos_file_path))

    def copy_object(self, bucket: str, source_path: str, destination_path: str) -> None:
        return sync.run(self.acopy_object(bucket, source_path, destination_path))

    def list_dir(self, bucket: str, bos_file_path: str, only_deep1: bool = True) -> list[BosObject]:
        return sync.run(self.alist_dir(bucket, bos_file_path, only_deep1))

    def get_bos_bucket_location(self, bucket_name: str) -> str:
        return sync.run(self.aget_bos_bucket_location(bucket_name))

    def get_bos_file_shared_url(self, remote_file_path: str, bucket_name: str,
                                expiration_s: int = SHARED_URL_EXPIRATION_S) -> str:
        """A link that reads the object with no credentials for ``expiration_s`` seconds (BOS's
        pre-signed URL: the bce-auth-v1 signature of a ``GET`` in its ``authorization`` parameter)."""
        url = self._url(_bucket(bucket_name), _key(remote_file_path))
        self.require_keys()
        ak, sk = self.config.access_key, self.config.secret_key
        assert ak and sk
        path = url.split("://", 1)[-1].partition("/")[2]
        signature = sign("GET", "/" + path, None, {"Host": host_of(url)}, ak, sk, time.time(), expiration_s)
        return f"{url}?authorization={quote(signature, safe='')}"


def generate_bos_file_path(bucket_name: str, absolute_path: str) -> str:
    """``bos:/<bucket><absolute_path>`` (``absolute_path`` starts with ``/``)."""
    return f"bos:/{bucket_name}{absolute_path}"


def generate_bos_file_parent_path(bucket_name: str, absolute_path: str) -> str:
    """The ``bos:/`` path of the folder holding ``absolute_path``."""
    return f"bos:{PurePosixPath(f'/{bucket_name}{absolute_path}').parent}"


def is_valid_bos_path(path: str) -> bool:
    """Whether ``path`` is a ``bos:/`` folder path of letters, digits, ``_`` and ``-`` (the
    official rule: a file name with a dot is not one)."""
    return isinstance(path, str) and re.match(r"^bos:/([a-zA-Z0-9_-]+/)*[a-zA-Z0-9_-]*$", path) is not None


def parse_bos_path(bos_path: str) -> tuple[str, str]:
    """``bos:/bucket/a/b`` (or ``bos://``) -> ``("bucket", "/a/b")``; ValidationError (a ValueError)
    when it is not a ``bos:/`` path or names no bucket."""
    if not isinstance(bos_path, str) or not bos_path.startswith("bos:/"):
        raise ValidationError("bos_path", f"must start with 'bos:/' (bos:/bucket/path), got {bos_path!r}")
    rest = bos_path[6:] if bos_path.startswith("bos://") else bos_path[5:]
    bucket, slash, path = rest.partition("/")
    if not bucket:
        raise ValidationError("bos_path", f"names no bucket (bos:/bucket/path), got {bos_path!r}")
    return _bucket(bucket, "bos_path"), slash + path
