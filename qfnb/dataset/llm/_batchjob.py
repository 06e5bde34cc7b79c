"""A dataset's prompts run as a durable platform batch-inference task (``BatchJob``): what
``Dataset.test_using_llm`` and ``Model.batch_inference`` do for a model that lives on the
platform without a chat service of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qfnb._core.errors import ValidationError
from qfnb._core.runtime.progress import ProgressArg, make_progress
from qfnb.resources.batch_job import BatchJob, JobState

from ._infer import prompts_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..view import DatasetView


async def platform_version(target: Any) -> str | None:
    """The version id of a platform ``Model`` that has no chat target (no deployed service,
    not a preset): such a model runs as a batch task. None for anything else."""
    version = getattr(target, "version_id", None)
    achat_target = getattr(target, "achat_target", None)
    if version is None or getattr(target, "service", None) is not None or not callable(achat_target):
        return None
    try:
        await achat_target()
    except ValidationError:
        return str(version)
    return None


async def run_as_job(ds: DatasetView, model_id: str, *, prompt_column: str, progress: ProgressArg,
                     params: dict[str, Any], config: Any = None) -> pd.DataFrame:
    """Every row's prompt through ``model_id`` as one platform task; the rows plus ``llm_output``
    (and ``error`` where a row failed)."""
    rows = prompts_of(ds, prompt_column)
    job = await BatchJob.asubmit(rows, model_id=model_id, inference_params=params, config=config)
    state = await _await_job(job, len(rows), progress)
    if state.status != "Done":
        raise ValidationError("model", f"batch task {job.task_id} ended {state.status}: "
                              f"{state.view.get('errorReason') or 'stopped before every row had an answer'}")
    values = await job.aresults()
    df = ds.to_pandas()
    df["llm_output"] = [v.result if v is not None and not isinstance(v, Exception) else None for v in values]
    errors = [str(v) if isinstance(v, Exception) else None for v in values]
    if any(errors):
        df["error"] = errors
    return df.reset_index(drop=True)


async def _await_job(job: BatchJob, total: int, progress: ProgressArg) -> JobState:
    """Wait for the task, showing each finished row on the progress bar."""
    bar = make_progress(progress, desc=f"batch {job.task_id}")
    if bar is None:
        return await job.await_done()
    seen = 0

    def on_state(state: JobState) -> None:
        nonlocal seen
        for i in range(seen, state.done + state.failed):
            bar.on_result(i, True)
        seen = state.done + state.failed

    bar.on_start(total)
    try:
        return await job.await_done(on_state=on_state)
    finally:
        bar.on_close()
