"""The console's datasets: created, filled from a result, imported once per key (and recovered after a stop),
exported as the cloud's zip."""

from __future__ import annotations

import io
import logging
import time
import zipfile
from typing import Any

from qfnb.local.domain.state.datasets import (
    EXPORT_BUCKET,
    append_rows,
    dataset_rows,
    export_lines,
    import_files,
    stored_count,
)
from qfnb.local.domain.state.datasets import recover as recover_dataset_files
from qfnb.local.domain.state.site import Site, get
from qfnb.local.domain.state.values import BodyError, check_name, iso
from qfnb.protocol.console.enums import ExportStatus, ImportStatus

log = logging.getLogger("qfnb.local.domain.console.dataset_tasks")


def create_dataset(platform: Site, body: dict[str, Any]) -> dict[str, Any]:
    name = check_name("name", body.get("name") or body.get("datasetName"))
    return platform.store.insert("datasets", {
        "name": name, "projectType": body.get("projectType", 20), "templateType": body.get("templateType", 2000),
        "dataType": body.get("dataType", 4), "storageType": body.get("storageType", "sysBos"),
        "dataFormat": body.get("dataFormat", "PromptResponse"), "importStatus": -1, "releaseStatus": 0,
        "entityCount": 0})


def create_result_dataset(platform: Site, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A released dataset holding ``rows`` as they are (e.g. with a ``completion`` per row)."""
    ds = create_dataset(platform, {"name": name})
    count = append_rows(platform.settings.data_dir, ds, rows)
    return platform.store.update("datasets", ds["id"], importStatus=2, releaseStatus=2, entityCount=count,
                                 modified=time.time())


#: why an import shows failed after a restart: the daemon stopped (was killed) while it ran
INTERRUPTED = "interrupted: the platform stopped during the import, and none of its rows were kept; import again"


#: the keys of the last imports a dataset's record remembers (a retry comes within seconds)
KEPT_IMPORT_KEYS = 64


class _Imported(Exception):
    """The import under this key was recorded meanwhile (a retry ran beside its first try)."""


def import_dataset(platform: Site, ds: dict[str, Any], files: Any, key: str | None = None) -> dict[str, Any]:
    """Import ``files`` into ``ds``: Running while it runs, then Finished with the new count (recorded
    under the data file's lock, with the rows) or Failed with why, none of its rows kept. ``key`` (the
    call's ``Idempotency-Key``): an import under a key already recorded is not run again, and one whose
    first try is recorded while it runs appends nothing, so a call sent again (a retry, a daemon that died
    under it) imports its rows once."""
    if not isinstance(files, list) or not files:
        raise BodyError("files", "is required: a list of bos:/bucket/key URIs")
    if key and key in (ds.get("importKeys") or []):
        return ds
    platform.store.update("datasets", ds["id"], importStatus=ImportStatus.RUNNING.value, importErrorMessage="")

    def finished(count: int) -> None:
        keys = list(get(platform, "datasets", ds["id"], "datasetId").get("importKeys") or [])
        if key and key in keys:
            raise _Imported
        platform.store.update("datasets", ds["id"], importStatus=ImportStatus.FINISHED.value, entityCount=count,
                              modified=time.time(), **({"importKeys": [*keys, key][-KEPT_IMPORT_KEYS:]} if key else {}))

    try:
        import_files(platform.settings.data_dir, platform.objects, ds, files, commit=finished)
    except _Imported:  # its first try's rows are in: this one's were cut back
        log.info("dataset %s: import %r was already recorded; its rows were not appended again", ds["sid"], key)
        platform.store.update("datasets", ds["id"], importStatus=ImportStatus.FINISHED.value)
    except BaseException as exc:
        platform.store.update("datasets", ds["id"], importStatus=ImportStatus.FAILED.value,
                              importErrorMessage=str(exc) or type(exc).__name__)
        raise
    return get(platform, "datasets", ds["id"], "datasetId")


def recover_imports(platform: Site) -> None:
    """After a restart: an append a kill cut short is undone (:func:`~qfnb.local.domain.state.datasets.recover`),
    an import that was running shows Failed (:data:`INTERRUPTED`), counting the rows kept, and the part
    files of uploads cut short are removed."""
    data_dir = platform.settings.data_dir
    if removed := platform.objects.remove_parts():
        log.warning("removed %d part file(s) of uploads a stop cut short", removed)
    undone = set(recover_dataset_files(data_dir))
    for ds in platform.store.all("datasets", lambda d: d.get("importStatus") == ImportStatus.RUNNING.value
                                 or d["sid"] in undone):
        log.warning("dataset %s: an import was interrupted by a stop; marked failed", ds["sid"])
        platform.store.update("datasets", ds["id"], importStatus=ImportStatus.FAILED.value,
                              importErrorMessage=INTERRUPTED, entityCount=stored_count(data_dir, ds))


def export_dataset(platform: Site, ds: dict[str, Any]) -> dict[str, Any]:
    """Write the dataset's rows to an export object (at once: local datasets are small) and
    record it; ``exportRecord`` lists the records with their download URLs. The object is a zip
    archive of one JSON-lines file, as the cloud's exports are (the official SDK unzips it)."""
    rows = dataset_rows(platform.settings.data_dir, ds)
    exports = list(ds.get("exports") or [])
    name = f"export-{len(exports) + 1}"
    key = f"{ds['sid']}/{name}.zip"
    started = time.time()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr(f"{name}.jsonl", export_lines(rows))
    platform.objects.put(EXPORT_BUCKET, key, archive.getvalue())
    exports.append({"id": len(exports) + 1, "status": ExportStatus.FINISHED.value, "exportFormat": 0,
                    "exportType": 1, "exportTo": 0, "entityCount": len(rows), "startTime": iso(started),
                    "finishTime": iso(time.time()), "bucket": EXPORT_BUCKET, "key": key})
    return platform.store.update("datasets", ds["id"], exports=exports)
