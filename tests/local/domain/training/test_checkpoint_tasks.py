"""A fine-tune's checkpoints on the platform (with the fast stand-in worker): ``checkpointList`` in the
task detail, the best one and the over-fitting named, publishing any checkpoint, an incremental run
from one, and the checkpoints kept once in the model store and removed with their task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from platform_doubles import FakeRegistry
from platform_helpers import Signer, bearer, client_for, console, token, wait_for

from qfnb.local.domain.training.fine_tunes import progress_fields
from qfnb.local.domain.training.jobs import progress_update
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX
from tests.local.domain.test_routes_console import upload_dataset

V2 = "/v2/finetuning"


def _task(client: Any, ds: int, hyper: dict[str, Any], split: int = 25, **extra: Any) -> str:
    jid = console(client, V2, {"name": "helpdesk-faq", "model": "tiny-chat"}, Action="CreateFineTuningJob")
    return str(console(client, V2, {"jobId": jid["result"]["jobId"], "hyperParameterConfig": hyper,
                                    "datasetConfig": {"versions": [{"versionId": ds}], "splitRatio": split},
                                    **extra}, Action="CreateFineTuningTask")["result"]["taskId"])


def _done(client: Any, tid: str) -> dict[str, Any]:
    fetch = lambda: console(client, V2, {"taskId": tid}, Action="DescribeFineTuningTask")["result"]  # noqa: E731
    return dict(wait_for(lambda: (d := fetch())["runStatus"] == "Done" and d))


def test_progress_update_collects_checkpoint_lines_once() -> None:
    line = {"step": 4, "total_steps": 8, "time": 1_700_000_004.0,
            "checkpoint": {"step": 4, "trainLoss": 2.0, "evalLoss": 3.0, "path": "/x/step-4"}}
    upd = progress_update({"lossCurve": [], "started": 1_700_000_000.0}, [line])
    assert upd["checkpointList"] == [{"step": 4, "trainLoss": 2.0, "evalLoss": 3.0, "path": "/x/step-4",
                                      "time": "2023-11-14T22:13:24Z"}]
    assert progress_update({"lossCurve": [], **upd}, [line])["checkpointList"] == upd["checkpointList"]


def test_progress_update_keeps_where_the_answers_collapsed() -> None:
    collapse = {"step": 8, "rate": 1.0, "seen": "4 of 4 answers degenerate", "example": "OK OK", "lastGoodStep": 4}
    line = {"step": 8, "total_steps": 20, "time": 1_700_000_008.0, "collapse": collapse}
    upd = progress_update({"lossCurve": [], "started": 1_700_000_000.0}, [line])
    assert upd["collapse"] == {**collapse, "time": "2023-11-14T22:13:28Z"}
    later = progress_update({"lossCurve": [], **upd}, [{"step": 9, "total_steps": 20, "loss": 1.0, "time": 1.7e9 + 9}])
    assert later["collapse"] == upd["collapse"]  # kept once seen
    assert progress_fields({**upd, **later})["collapse"] == upd["collapse"]  # the task detail carries it


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(root))
    return root


def test_checkpoints_are_listed_judged_stored_and_published(tmp_path: Path, store: Path) -> None:
    with client_for(tmp_path / "data") as client:
        ds = upload_dataset(client, [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(12)])
        # 9 rows train (3 held out), batch 1, 9 steps; the default: 5 checkpoints with a split
        tid = _task(client, ds, {"epoch": 1, "batchSize": 1, "fakeEvalLosses": [3.2, 2.9, 3.5, 5.1, 6.8]})
        done = _done(client, tid)
        saved = done["checkpointList"]
        assert [c["step"] for c in saved] == [2, 4, 5, 7, 9]
        assert [c["evalLoss"] for c in saved] == [3.2, 2.9, 3.5, 5.1, 6.8]
        assert all(c["time"].endswith("Z") and c["trainLoss"] > 0 and "path" not in c for c in saved)
        assert done["bestCheckpoint"] == 4
        assert done["overfitting"]["message"] == "over-fitting since step 4: held-out loss 2.9 → 6.8"
        # the held-out split is kept with the task, for the dashboard's "next:" %qfeval
        assert [json.loads(x)["prompt"] for x in Path(done["evalFile"]).read_text().splitlines()] and Path(
            done["evalFile"]).parent.name == tid
        # kept once, content-addressed, in the model store; the job dir's copies are gone
        folders = sorted(p for p in store.iterdir() if p.name.startswith("sha256-"))
        assert len(folders) == 5 and all((f / "adapter_config.json").is_file() for f in folders)
        job_dir = next((tmp_path / "data" / "jobs").iterdir())
        assert not list((job_dir / "checkpoints").glob("step-*/adapter_config.json"))

        # publish a checkpoint by its step (versionMeta.step, as on the cloud); a wrong step names those there are
        job_id = done["jobId"]
        bad = client.post("/wenxinworkshop/modelrepo/publishTrainModel", json={
            "isNewModel": True, "modelName": "faq", "versionMeta": {"taskId": job_id, "iterationId": tid, "step": 3}},
            auth=Signer())
        assert "versionMeta.step" in bad.text and "2, 4, 5, 7, 9" in bad.text
        pub = console(client, "/wenxinworkshop/modelrepo/publishTrainModel", {
            "isNewModel": True, "modelName": "faq", "versionMeta": {"taskId": job_id, "iterationId": tid, "step": 4}})
        version = console(client, "/wenxinworkshop/modelrepo/modelVersionDetail",
                          {"modelVersionId": pub["result"]["versionId"]})["result"]
        assert version["modelVersionId"] == pub["result"]["versionId"]

        # an incremental run continues from a checkpoint (incrementCheckpointStep)
        tid2 = _task(client, ds, {"epoch": 1, "batchSize": 1}, incrementTaskId=tid, incrementCheckpointStep=7)
        spec = json.loads(next(p for p in (tmp_path / "data" / "jobs").iterdir() if p.name == tid2).joinpath(
            "spec.json").read_text())
        step7 = next(c for c in client.app.state.platform.store.get("runs", tid)["checkpointList"] if c["step"] == 7)
        assert spec["init_adapter"] == step7["path"] and Path(step7["path"]).parent == store
        _done(client, tid2)

        # the second run's checkpoints hold the same bytes (the stand-in's): stored once, shared
        folders = lambda: sorted(p for p in store.iterdir() if p.name.startswith("sha256-"))  # noqa: E731
        assert len(folders()) == 5
        # deleting a task removes its checkpoints, except those a published version or another task uses
        assert console(client, V2, {"taskId": tid}, Action="DeleteFineTuningTask")["result"] is True
        assert len(folders()) == 5
        gone = client.post(V2, params={"Action": "DescribeFineTuningTask"}, json={"taskId": tid}, auth=Signer())
        assert gone.status_code in (400, 404)
        console(client, V2, {"taskId": tid2}, Action="DeleteFineTuningTask")
        (kept,) = folders()  # the published step 4
        assert json.loads((kept / "adapter_config.json").read_text())["step"] == 4
        assert not (tmp_path / "data" / "jobs" / tid2).exists()


def test_checkpoint_options_are_checked_before_anything_runs(tmp_path: Path, store: Path) -> None:
    with client_for(tmp_path / "data") as client:
        ds = upload_dataset(client)
        jid = console(client, V2, {"name": "j", "model": "tiny-chat"}, Action="CreateFineTuningJob")["result"]["jobId"]

        def refused(hyper: dict[str, Any], split: int = 25, **extra: Any) -> str:
            resp = client.post(V2, params={"Action": "CreateFineTuningTask"}, auth=Signer(), json={
                "jobId": jid, "hyperParameterConfig": hyper,
                "datasetConfig": {"versions": [{"versionId": ds}], "splitRatio": split}, **extra})
            assert resp.status_code == 400, resp.text
            return resp.text

        assert "hyperParameterConfig.earlyStop" in refused({"earlyStop": True}, split=0)
        assert "validation split" in refused({"evalMetric": "rouge_l"}, split=0)
        assert "rouge_l" in refused({"evalMetric": "bleu9"})
        assert "hyperParameterConfig.checkpoints" in refused({"checkpoints": 101})
        assert "hyperParameterConfig.checkpoints" in refused({"earlyStop": True, "checkpoints": 0})
        assert "incrementTaskId" in refused({}, incrementTaskId="task-nope", incrementCheckpointStep=2)
    assert not (tmp_path / "data" / "jobs").exists() or not list((tmp_path / "data" / "jobs").iterdir())


def test_a_deploy_loads_every_checkpoint_and_name_at_step_serves_each(tmp_path: Path, store: Path) -> None:
    registry = FakeRegistry()
    with client_for(tmp_path / "data", registry) as client:
        ds = upload_dataset(client, [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(12)])
        tid = _task(client, ds, {"epoch": 1, "batchSize": 1, "fakeEvalLosses": [3.2, 2.9, 3.5, 5.1, 6.8]})
        done = _done(client, tid)
        run = client.app.state.platform.store.get("runs", tid)
        paths = {c["step"]: Path(c["path"]) for c in run["checkpointList"]}
        pub = console(client, "/wenxinworkshop/modelrepo/publishTrainModel", {
            "isNewModel": True, "modelName": "faq", "versionMeta": {"taskId": done["jobId"], "iterationId": tid}})
        console(client, "/wenxinworkshop/service/apply", {
            "modelId": pub["result"]["modelId"], "modelVersionId": pub["result"]["versionId"], "name": "faq",
            "uri": "ep_faq", "replicas": 1, "poolType": 2})
        wait_for(lambda: "ep_faq" in registry.adapters)
        # the deploy hands the engine every checkpoint of the run with the published adapter
        assert set(registry.siblings["ep_faq"]) == {*paths.values(), Path(run["adapter_dir"])}

        def ask(name: str) -> Any:
            return client.post(f"{MODEL_API_PREFIX}/chat/{name}", params={"access_token": token(client)},
                               json={"messages": [{"role": "user", "content": "hi"}]})

        assert ask("ep_faq@step-7").json()["result"] == "adapter ep_faq@step-7: hi"
        assert registry.adapters["ep_faq@step-7"][1] == paths[7]
        assert ask("ep_faq@best").json()["result"] == "adapter ep_faq@best: hi"
        assert registry.adapters["ep_faq@best"][1] == paths[4]  # the lowest held-out loss
        ask("faq@last")  # the model's name works as the service's endpoint does
        assert registry.adapters["faq@last"][1] == paths[9]
        assert set(registry.siblings["faq@last"]) == set(registry.siblings["ep_faq"])
        wrong = ask("ep_faq@step-3").json()
        assert wrong["error_code"] == 336003 and "2, 4, 5, 7, 9" in wrong["error_msg"]
        assert ask("nothing@best").json()["error_code"] == 336005
        # the checkpoints asked for are not listed as models of their own
        listed = client.get("/v1/models", headers={"Authorization": f"Bearer {bearer(client)}"}).json()["data"]
        assert "ep_faq" in {m["id"] for m in listed} and not [m for m in listed if "@" in m["id"]]
