"""A reused fine-tune (issue 58): its model already serving shows "deployed as …" and offers no Deploy;
it ended when the original run did; and the dashboard's timer ticks through a phase without events
(loading the weights). The dashboard's state, fed the events a replay emits (no platform)."""

from __future__ import annotations

from datetime import UTC, datetime

from qfnb.notebook.training.state import TrainingState

FINISHED = "2024-05-01T10:00:00+00:00"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _replayed(service: dict[str, str] | None) -> dict[str, object]:
    return {"taskId": "task-1", "runStatus": "Done", "currentStep": 4, "totalSteps": 4, "elapsedSeconds": 30.0,
            "replayed": {"task_id": "task-1", "job_id": "job-1", "finished": FINISHED, "service": service}}


def test_a_reused_run_already_serving_says_deployed_and_ends_when_it_first_did() -> None:
    state = TrainingState(title="ft", clock=Clock(), wall=lambda: 2_000_000_000.0)
    state._apply_detail(_replayed({"service_id": "svc-1", "service_endpoint": "ep-tuned"}))
    state.finish("succeeded", output={"task_id": "task-1"})
    assert state.service == "ep-tuned" and any("deployed as ep-tuned" in line for line in state.log)
    assert state.ended_at == datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()  # not the replay's time


def test_a_reused_run_not_serving_stays_deployable() -> None:
    state = TrainingState(title="ft", clock=Clock(), wall=lambda: 2_000_000_000.0)
    state._apply_detail(_replayed(None))
    state.finish("succeeded", output={"task_id": "task-1"})
    assert state.service is None and not any("deployed as" in line for line in state.log)


def test_the_timer_ticks_between_the_platforms_events() -> None:
    clock = Clock()
    state = TrainingState(title="ft", clock=clock, started_at=clock())
    state._apply_detail({"taskId": "t", "elapsedSeconds": 12.0, "phase": "loading weights"})
    clock.now += 40  # no event while the weights load
    assert state.elapsed_now == 52.0
    state.finish("failed", error="stopped")
    clock.now += 100
    assert state.elapsed_now == 52.0  # frozen once it ended
