"""Where and how a data set's file is put on BOS for the console to import (v1 and v2 accounts)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from qfnb.resources.bos import BosHelper

__all__ = ["Upload", "put_object"]


@dataclass(frozen=True)
class Upload:
    """Where a dataset's file is put for the platform to import: the dataset's own storage, unless
    a staging bucket is given (the official ``sup_storage_id/path/region``: on the cloud, a dataset
    on the platform's own BOS is filled from one of the user's buckets), signed with ``ak``/``sk``
    when given, else the configured IAM keys."""

    bucket: str = ""
    path: str = ""
    region: str = ""
    ak: str | None = None
    sk: str | None = None
    #: whether the rows are annotated (None: as the rows' schema says)
    annotated: bool | None = None


async def put_object(helper: BosHelper, bucket: str, key: str, data: bytes) -> None:
    """Put a dataset file through the official method ``BosHelper.upload_content_to_bos`` (so code that
    patches it, as the official tests do, sees every upload), run off the event loop: the sync
    method blocks on qfnb's loop, which may be this one."""
    await asyncio.to_thread(helper.upload_content_to_bos, data, key, bucket)
