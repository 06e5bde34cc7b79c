"""The validation split: held-out rows are written apart, never trained on, and their loss is reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from platform_helpers import client_for, console, wait_for

from qfnb.local.domain.state.values import BodyError
from qfnb.local.domain.training.jobs import progress_update
from qfnb.local.domain.training.split import DEFAULT_SPLIT_MIN_ROWS, held_out, held_rows, split_for, split_percent
from qfnb.protocol.console.train_modes import MODE_TABLE
from tests.local.domain.test_routes_console import ROWS, detail, start_job, upload_dataset


def test_held_out_rows_are_a_seeded_share_that_leaves_rows_to_train() -> None:
    assert held_out(10, 20, seed=1) == held_out(10, 20, seed=1)
    assert len(held_out(10, 20, seed=1)) == 2 and len(held_out(10, 25, seed=1)) == 2 and held_out(4, 20, 1) == []
    assert held_out(10, 20, seed=1) != held_out(10, 20, seed=2) or held_out(10, 20, 3) != held_out(10, 20, 1)
    assert held_out(10, 0, seed=1) == [] and len(held_out(10, 90, seed=1)) == 9
    with pytest.raises(BodyError, match="nothing to train on"):
        held_out(3, 100, seed=1)
    assert split_percent(None, "f") == 0 and split_percent(20, "f") == 20 and split_percent(20.0, "f") == 20
    for bad in (-1, 101, 2.5, "20", True):
        with pytest.raises(BodyError, match=r"^f:"):
            split_percent(bad, "f")


def test_a_collapse_prone_mode_given_no_split_holds_a_fifth_out_from_20_rows() -> None:
    for name in ("DPO", "KTO", "RFT"):
        mode = MODE_TABLE[name]
        assert split_for(mode, 40, None, "f") == (20, True)
        assert split_for(mode, DEFAULT_SPLIT_MIN_ROWS - 1, None, "f") == (0, False)  # too few to judge on
        assert split_for(mode, 40, 0, "f") == (0, False)  # a split of 0 named outright trains on every row
        assert split_for(mode, 40, 10, "f") == (10, False)
    for name in ("SFT", "PostPretrain"):
        assert split_for(MODE_TABLE[name], 40, None, "f") == (0, False)
    with pytest.raises(BodyError, match=r"^f:"):
        split_for(MODE_TABLE["DPO"], 40, "20", "f")


def test_rows_are_held_out_by_prompt_and_a_row_without_one_is_its_own() -> None:
    rows = [{"prompt": f"q{i // 2}", "completion": str(i)} for i in range(20)]  # two answers to each of 10
    held = held_rows(rows, 20, seed=3)
    assert len(held) == 4 and {i // 2 for i in held} == {i // 2 for i in held for _ in (0, 1)}
    assert all((i ^ 1) in held for i in held)  # a prompt's two rows together
    texts = [{"text": f"block {i}"} for i in range(10)]  # plain text: each row its own
    assert len(held_rows(texts, 20, seed=3)) == 2 and held_rows(texts, 0, seed=3) == set()
    distinct = [{"prompt": f"q{i}"} for i in range(10)]  # one row a prompt: the split as it always was
    assert held_rows(distinct, 20, seed=3) == set(held_out(10, 20, seed=3))


def test_progress_update_keeps_a_separate_eval_curve() -> None:
    run: dict[str, Any] = {"lossCurve": [], "evalLossCurve": [], "started": 100.0}
    points = [{"step": 1, "total_steps": 4, "loss": 2.0, "time": 101.0},
              {"step": 2, "total_steps": 4, "loss": 1.5, "time": 102.0},
              {"step": 2, "total_steps": 4, "eval_loss": 1.9, "time": 102.5}]
    upd = progress_update(run, points)
    assert upd["lossCurve"] == [[1, 2.0], [2, 1.5]] and upd["evalLossCurve"] == [[2, 1.9]]
    assert upd["currentStep"] == 2
    again = progress_update({**run, **upd}, points)  # a re-read adds nothing twice
    assert again["evalLossCurve"] == [[2, 1.9]] and again["lossCurve"] == [[1, 2.0], [2, 1.5]]
    assert "evalLossCurve" not in progress_update({"lossCurve": []}, points[:2])  # no split: no eval curve


def _pairs(path: Path) -> list[tuple[str, str]]:
    return [(r["prompt"], r["response"]) for r in map(json.loads, path.read_text().splitlines())]


def _job_dir(tmp_path: Path) -> Path:
    (job,) = (tmp_path / "jobs").iterdir()
    return job


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_split_rows_go_to_their_own_file_and_the_detail_carries_both_curves(tmp_path: Path, api: str) -> None:
    with client_for(tmp_path) as client:
        ds = upload_dataset(client)
        if api == "v1":
            task, job = start_job(client, ds, batchSize=1, checkpoints=0)  # trainsetRate 20: 1 of 8 rows held out
            fetch = lambda: {**(d := detail(client, task, job)),  # noqa: E731
                             "runStatus": "Done" if d["trainStatus"] == "FINISH" else d["trainStatus"]}
        else:
            jid = console(client, "/v2/finetuning", {"name": "j", "model": "tiny-chat"},
                          Action="CreateFineTuningJob")["result"]["jobId"]
            tid = console(client, "/v2/finetuning", {
                "jobId": jid, "hyperParameterConfig": {"epoch": 1, "batchSize": 1, "checkpoints": 0},
                "datasetConfig": {"versions": [{"versionId": ds}], "splitRatio": 25}},
                Action="CreateFineTuningTask")["result"]["taskId"]
            fetch = lambda: console(client, "/v2/finetuning", {"taskId": tid},  # noqa: E731
                                    Action="DescribeFineTuningTask")["result"]
        final = wait_for(lambda: (d := fetch())["runStatus"] == "Done" and d)
    job_dir = _job_dir(tmp_path)
    train, held = _pairs(job_dir / "train.jsonl"), _pairs(job_dir / "eval.jsonl")
    assert len(held) == (1 if api == "v1" else 2) and len(train) + len(held) == len(ROWS)
    assert not set(train) & set(held)  # the held-out rows are not in the training file
    assert {p for p, _ in train + held} == {r["prompt"] for r in ROWS}
    spec = json.loads((job_dir / "spec.json").read_text())
    assert Path(spec["train_file"]).name == "train.jsonl" and Path(spec["eval_file"]).name == "eval.jsonl"
    assert final["totalSteps"] == len(train) and len(final["lossCurve"]) == len(train)
    assert final["evalLossCurve"] and all(step % 2 == 0 or step == len(train) for step, _ in final["evalLossCurve"])


def test_no_split_no_eval_file_and_a_bad_ratio_is_refused(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        ds = upload_dataset(client)
        jid = console(client, "/v2/finetuning", {"name": "j", "model": "tiny-chat"},
                      Action="CreateFineTuningJob")["result"]["jobId"]
        bad = client.post("/v2/finetuning", params={"Action": "CreateFineTuningTask"}, json={
            "jobId": jid, "datasetConfig": {"versions": [{"versionId": ds}], "splitRatio": 120}},
            auth=__import__("platform_helpers").Signer())
        assert bad.status_code == 400 and "datasetConfig.splitRatio" in bad.text
        tid = console(client, "/v2/finetuning", {
            "jobId": jid, "hyperParameterConfig": {"epoch": 1, "batchSize": 4},
            "datasetConfig": {"versions": [{"versionId": ds}], "splitRatio": 0}},
            Action="CreateFineTuningTask")["result"]["taskId"]
        final = wait_for(lambda: (d := console(client, "/v2/finetuning", {"taskId": tid},
                                               Action="DescribeFineTuningTask")["result"])["runStatus"] == "Done" and d)
    assert "evalLossCurve" not in final and final["lossCurve"]
    assert not (_job_dir(tmp_path) / "eval.jsonl").exists()
    assert "eval_file" not in json.loads((_job_dir(tmp_path) / "spec.json").read_text())
