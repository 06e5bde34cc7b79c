"""``Model.deploy()`` shows how it goes, stage by stage: a bar that names each stage and the platform's
state (a widget in a kernel, whether or not ``%load_ext`` ran; a tqdm-style line on a terminal)."""

from __future__ import annotations

import pytest

from qfnb._core.config import Config
from qfnb._core.runtime import progress as progress_mod
from qfnb._core.runtime.stages import StageFeed, StageProgress, StageSnapshot, make_stages
from qfnb.model import DeployConfig, Model
from qfnb.resources.console import FineTune
from tests.fakes.console_cloud import ConsoleCloud
from tests.fakes.console_fixtures import *  # noqa: F403  (cloud, cfg)
from tests.fakes.fixtures import fake_in_process  # noqa: F401
from tests.fakes.progress import RecordingBar


def _finished_run(cloud: ConsoleCloud, cfg: Config) -> Model:
    job = FineTune.V2.create_job(name="j", model="m", train_mode="SFT", config=cfg)["result"]["jobId"]
    task = FineTune.V2.create_task(job_id=job, params_scale="LoRA", dataset_config={
        "sourceType": "Platform", "versions": [{"versionId": 1}], "splitRatio": 0}, config=cfg)["result"]["taskId"]
    cloud.tasks[task]["runStatus"] = "Done"
    return Model(task_id=task, job_id=job, name="my-tune", config=cfg)


def test_stage_meter_names_the_stage_and_the_platform_state() -> None:
    snap = StageSnapshot("deploy m", 3, 1, 0, 12.0, stage="creating the service", detail="Deploying")
    assert snap.meter() == "deploy m: creating the service · Deploying · 1/3 33% [00:12]"
    assert snap.meter(6).endswith("33%|██    | [00:12]")
    done = StageSnapshot("deploy m", 3, 3, 0, 15.0, closed=True, stage="starting the service")
    assert done.meter() == "deploy m: done · 3/3 100% [00:15]"


def test_feed_counts_each_stage_once_and_a_failure_stays_short() -> None:
    bar = RecordingBar()
    feed = StageFeed(bar, ["a", "b", "c"])
    feed.enter("a")
    feed.enter("c")  # b was quick: counted with a
    feed.close(ok=True)
    assert bar.calls == [("start", 3), ("result", 0), ("result", 1), ("result", 2), ("close", None)]
    bar = RecordingBar()
    feed = StageFeed(bar, ["a", "b"])
    feed.enter("b")
    feed.close(ok=False)
    assert [c for c in bar.calls if c[0] == "result"] == [("result", 0)] and bar.calls[-1] == ("close", None)


def test_make_stages_resolves_progress_as_every_bar_does(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_stages(None, ["a"], desc="d") is None and make_stages(False, ["a"], desc="d") is None
    feed = make_stages(True, ["a"], desc="d")
    assert feed is not None and isinstance(feed.bar, StageProgress)
    monkeypatch.setattr("qfnb._core.runtime.stages.in_notebook_kernel", lambda: True)
    feed = make_stages(None, ["a"], desc="d")
    assert feed is not None and isinstance(feed.bar, StageProgress)
    with pytest.raises(TypeError):
        make_stages("yes", ["a"], desc="d")  # type: ignore[arg-type]


def test_deploy_walks_its_stages(cloud: ConsoleCloud, cfg: Config) -> None:
    m = _finished_run(cloud, cfg)
    assert m.deploy_stages() == ["publishing the model", "creating the service", "starting the service"]
    bar = RecordingBar()
    svc = m.deploy(DeployConfig(name="svc", endpoint_suffix="ep_p"), progress=bar)
    assert svc.endpoint == "ep_p"
    assert bar.calls == [("start", 3), ("result", 0), ("result", 1), ("result", 2), ("close", None)]
    assert m.deploy_stages() == ["creating the service", "starting the service"]  # published now


def test_deploy_draws_a_text_bar_on_a_terminal(cloud: ConsoleCloud, cfg: Config,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    m = _finished_run(cloud, cfg)
    m.deploy(DeployConfig(name="svc", endpoint_suffix="ep_t"), progress=True)
    err = capsys.readouterr().err
    assert "deploy my-tune: serving at endpoint ep_t · 3/3 100% [" in err


def test_no_bar_outside_a_kernel_by_default_and_a_bad_config_draws_none(
        cloud: ConsoleCloud, cfg: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    m = _finished_run(cloud, cfg)
    m.deploy(DeployConfig(name="svc", endpoint_suffix="ep_q"))
    assert "deploy" not in capsys.readouterr().err
    monkeypatch.setattr(progress_mod, "in_notebook_kernel", lambda: True)
    with pytest.raises(Exception, match="deploy_config"):
        m.deploy({"replicas": 1}, progress=True)  # type: ignore[arg-type]
    assert capsys.readouterr().err == ""


def test_a_failed_deploy_leaves_the_bar_short(cloud: ConsoleCloud, cfg: Config,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    m = _finished_run(cloud, cfg)

    async def broken(*a: object, **k: object) -> None:
        raise RuntimeError("no capacity")

    monkeypatch.setattr("qfnb.model.model.ServiceAPI.V2.acreate_service", broken)
    bar = RecordingBar()
    with pytest.raises(RuntimeError, match="no capacity"):
        m.deploy(DeployConfig(name="svc", endpoint_suffix="ep_f"), progress=bar)
    assert [c for c in bar.calls if c[0] == "result"] == [("result", 0)] and bar.calls[-1] == ("close", None)
