"""Store and supervisor logic without HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

from platform_helpers import CREDS, Signer, client_for, token

from qfnb.local.domain.state.store import Store
from qfnb.local.domain.training.jobs import progress_update
from qfnb.local.settings import Credentials, Settings
from qfnb.protocol.wires.qianfan.routes import MODEL_API_PREFIX


def test_store_ids_and_updates(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    rec = store.insert("runs", {"status": "Waiting", "n": 1})
    assert rec["sid"].startswith("task-") and isinstance(rec["id"], int)
    assert store.get("runs", rec["sid"])["id"] == rec["id"] == store.get("runs", str(rec["id"]))["id"]
    store.update("runs", rec["id"], status="Done")
    assert store.get("runs", rec["id"])["status"] == "Done" and store.get("runs", rec["id"])["n"] == 1
    assert store.get("runs", 999) is None and store.get("runs", True) is None
    store.close()
    assert Store(tmp_path / "db.sqlite3").all("runs")[0]["status"] == "Done"


def test_progress_update_with_unix_times() -> None:
    run = {"started": 1_700_000_000.0, "lossCurve": [[1, 4.0]]}
    update = progress_update(run, [{"step": 2, "total_steps": 10, "loss": 3.0, "epoch": 0.2, "time": 1_700_000_004.0},
                                   {"step": 3, "total_steps": 10, "loss": 2.5, "epoch": 0.3, "time": 1_700_000_006.0}])
    assert update["lossCurve"] == [[1, 4.0], [2, 3.0], [3, 2.5]]
    assert update["currentStep"] == 3 and update["totalSteps"] == 10
    assert update["elapsedSeconds"] == 6.0 and update["etaSeconds"] == 14.0
    assert update["phase"] == "training"


def test_progress_update_reports_the_workers_phase_before_step_one() -> None:
    run = {"started": 1_700_000_000.0, "lossCurve": []}
    update = progress_update(run, [{"step": 0, "total_steps": 0, "phase": "loading the base model's weights",
                                    "time": 1_700_000_002.0}])
    assert update["phase"] == "loading the base model's weights" and update["currentStep"] == 0
    assert update["lossCurve"] == [] and update["etaSeconds"] is None


def test_credentials_created_once_with_0600(tmp_path: Path) -> None:
    first = Credentials.load_or_create(tmp_path / "c.json")
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o600
    assert Credentials.load_or_create(tmp_path / "c.json") == first
    assert first.secret_key not in repr(first) and first.iam_secret_key not in repr(first)
    settings = Settings.from_env(data_dir=tmp_path / "d", env={"QFNB_MODEL_ALIASES": '{"ERNIE-Lite-8K": "X"}'})
    assert settings.aliases == {"ernie-lite-8k": "X"}
    assert settings.credentials.secret_key not in repr(settings)


def test_secrets_stay_out_of_logs(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with client_for(tmp_path) as c:
        tok = token(c)
        c.post(MODEL_API_PREFIX + "/chat/tiny-chat", json={"messages": [{"role": "user", "content": "x"}]},
               auth=Signer(sk="wrong-secret-value"))
        c.post(MODEL_API_PREFIX + "/chat/nope", params={"access_token": tok},
               json={"messages": [{"role": "user", "content": "x"}]})
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("qfnb"))  # the server's logs
    assert "rejected bce-auth-v1" in text
    for secret in (CREDS.secret_key, CREDS.iam_secret_key, "wrong-secret-value", tok):
        assert secret not in text


def test_progress_update_ignores_points_already_on_the_curve() -> None:
    """An adopted worker's file is re-read from the start: the curve must not grow twice."""
    run = {"started": 1_700_000_000.0, "lossCurve": [[1, 4.0], [2, 3.0]]}
    points = [{"step": s, "total_steps": 4, "loss": 5.0 - s, "time": 1_700_000_000.0 + s} for s in (1, 2, 3)]
    update = progress_update(run, points)
    assert update["lossCurve"] == [[1, 4.0], [2, 3.0], [3, 2.0]]
    assert update["currentStep"] == 3
