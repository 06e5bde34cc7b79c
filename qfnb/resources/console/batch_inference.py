"""Offline batch inference (console v2 ``/v2/batchinference``): the request builders behind
``Data.create_offline_batch_inference_task`` / ``get_…`` / ``stop_…`` / ``list_…``.

Each sends exactly the body the official SDK (0.4.12.3) sends, including the ``Referer: infer``
header of ``CreateBatchInferenceTask``.
"""

from __future__ import annotations

from typing import Any

from qfnb.protocol import batch as wire

from ._base import ConsoleRequest, invalid, require


def _create_offline_batch_inference_task(name: str, input_bos_uri: str | None = None,
                                         output_bos_uri: str | None = None, model_id: str | None = None,
                                         endpoint: str | None = None, inference_params: dict[str, Any] | None = None,
                                         description: str | None = None, afs_config: dict[str, Any] | None = None,
                                         completion_window: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``CreateBatchInferenceTask``: run ``model_id`` (or ``endpoint``) over the JSONL at
    ``input_bos_uri``, answers under ``output_bos_uri``; ``completion_window`` "24h" or None."""
    require(name, "name")
    if inference_params is not None and not isinstance(inference_params, dict):
        raise invalid("inference_params", f"must be a dict, got {type(inference_params).__name__}")
    body: dict[str, Any] = {"name": name, "inferenceParams": inference_params or {}, **kwargs}
    if afs_config:
        body["afsConfig"] = afs_config
    elif input_bos_uri and output_bos_uri:
        body["inputBosUri"] = require(input_bos_uri, "input_bos_uri")
        body["outputBosUri"] = require(output_bos_uri, "output_bos_uri")
    else:
        raise invalid("input_bos_uri", "input_bos_uri and output_bos_uri (or afs_config) are required")
    if model_id:
        body["modelId"] = model_id
    elif endpoint:
        body["endpoint"] = endpoint
    if description is not None:
        body["description"] = description
    if completion_window is not None:
        if completion_window not in wire.COMPLETION_WINDOWS:
            raise invalid("completion_window", f"must be one of {sorted(wire.COMPLETION_WINDOWS)} or None, "
                          f"got {completion_window!r}")
        body["completion_window"] = completion_window
    return ConsoleRequest(wire.ROUTE, body, action=wire.CREATE, headers=dict(wire.CREATE_HEADERS))


def _get_offline_batch_inference_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribeBatchInferenceTask``."""
    return ConsoleRequest(wire.ROUTE, {"taskId": require(task_id, "task_id"), **kwargs}, action=wire.DESCRIBE)


def _stop_offline_batch_inference_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``StopBatchInferenceTask``: finished rows stay in the output."""
    return ConsoleRequest(wire.ROUTE, {"taskId": require(task_id, "task_id"), **kwargs}, action=wire.STOP)


def _list_offline_batch_inference_task(marker: str | None = None, max_keys: int | None = None,
                                       page_reverse: bool | None = None,
                                       run_status: list[str] | str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``DescribeBatchInferenceTasks``; ``run_status`` e.g. "Running", "Done", "Stopped", "Failed"."""
    statuses = [run_status] if isinstance(run_status, str) else list(run_status or [])
    body = {k: v for k, v in {**kwargs, "marker": marker, "maxKeys": max_keys, "pageReverse": page_reverse,
                                "runStatus": statuses}.items() if v is not None}
    return ConsoleRequest(wire.ROUTE, body, action=wire.DESCRIBE_ALL)
