"""The daemon's model-store routes over HTTP (in-process), and what the platform then lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from qfnb.protocol.platform.daemon import CONTROL_HEADER, MODELS_ROUTE
from tests.store.test_model_store import snapshot, tiny_gguf


def test_add_list_and_serve_through_the_routes(client: TestClient, tmp_path: Path) -> None:
    src = tiny_gguf(tmp_path / "mine.gguf")
    added = client.post(MODELS_ROUTE, json={"path": str(src), "name": "byo-llama", "keep_alive": -1})
    assert added.status_code == 200, added.text
    assert added.json()["kind"] == "gguf" and added.json()["keep_alive"] == -1
    src.unlink()  # the store's hard link keeps the weights
    listing = client.get(MODELS_ROUTE).json()
    assert [m["name"] for m in listing["models"]] == ["byo-llama"]
    assert listing["store"]["bytes"] >= added.json()["size"] and listing["store"]["models"][0]["freed_by_rm"] > 0
    platform = client.app.state.platform  # type: ignore[attr-defined]
    assert "byo-llama" in {m.name for m in platform.served("chat")}
    assert platform.resolve("completions", "BYO-LLAMA").name == "byo-llama"
    # the OpenAI-shaped model list (what `openai` and the v2 clients read) names it too
    assert client.get("/v2/models").status_code == 401
    bearer = client.app.state.auth.issue_bearer(600)["token"]  # type: ignore[attr-defined]
    models = client.get("/v2/models", headers={"Authorization": f"Bearer {bearer}"}).json()
    assert models["object"] == "list" and "byo-llama" in [m["id"] for m in models["data"]]
    one = client.get("/v2/models/byo-llama", headers={"Authorization": f"Bearer {bearer}"}).json()
    assert one["id"] == "byo-llama" and one["api_types"] == ["chat", "completions"]


def test_a_refused_file_answers_one_sentence_and_changes_nothing(client: TestClient, tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("a text file renamed .gguf\n" * 10)
    store = tmp_path / "store"
    before = snapshot(store)
    resp = client.post(MODELS_ROUTE, json={"path": str(text), "name": "notes"})
    assert resp.status_code == 400
    assert resp.json() == {"error": "notes.gguf is not a GGUF model file (it does not start with the GGUF magic "
                                    "bytes)."}
    assert snapshot(store) == before
    assert client.post(MODELS_ROUTE, content=b"[1]").status_code == 400
    assert client.get(MODELS_ROUTE, headers={CONTROL_HEADER: "wrong"}).status_code == 403


def test_rm_is_refused_while_a_service_uses_the_model(client: TestClient, tmp_path: Path) -> None:
    assert client.post(MODELS_ROUTE, json={"path": str(tiny_gguf(tmp_path / "m.gguf")), "name": "byo"}).is_success
    (tmp_path / "m.gguf").unlink()
    platform = client.app.state.platform  # type: ignore[attr-defined]
    version = platform.store.insert("versions", {"baseModel": "byo", "modelId": 1})
    svc = platform.store.insert("services", {"name": "my-svc", "uri": "my_svc", "modelId": 1,
                                             "modelVersionId": version["id"], "status": "Done"})
    refused = client.delete(f"{MODELS_ROUTE}/byo")
    assert refused.status_code == 409 and "service my-svc" in refused.json()["error"]
    assert client.get(MODELS_ROUTE).json()["models"][0]["name"] == "byo"
    platform.store.update("services", svc["id"], status="Failed")
    removed = client.delete(f"{MODELS_ROUTE}/byo")
    assert removed.status_code == 200 and removed.json()["freedBytes"] > 0
    assert client.get(MODELS_ROUTE).json()["models"] == []
    assert "byo" not in {m.name for m in platform.served("chat")}
    assert client.delete(f"{MODELS_ROUTE}/byo").status_code == 404
    assert client.post(f"{MODELS_ROUTE}/byo/unload").json() == {"model": "byo", "unloaded": False}


def test_the_store_manifest_is_json_others_can_read(client: TestClient, tmp_path: Path) -> None:
    client.post(MODELS_ROUTE, json={"path": str(tiny_gguf(tmp_path / "m.gguf")), "name": "byo", "ctx": 1024,
                                    "roles": ["completion"]})
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    (entry,) = [v for v in manifest.values() if v["name"] == "byo"]
    assert entry["ctx"] == 1024 and entry["roles"] == ["completion"]
    assert entry["owner"] == str(client.app.state.platform.settings.data_dir.resolve())  # type: ignore[attr-defined]


def test_an_added_base_is_trainable_and_its_run_trains_on_the_stored_weights(client: TestClient,
                                                                            tmp_path: Path) -> None:
    from qfnb.local.domain.training import fine_tunes
    from tests.store.fine_tune_runs import start_run
    from tests.store.test_model_store import _hf_dir

    added = client.post(MODELS_ROUTE, json={"path": str(_hf_dir(tmp_path / "hf")), "name": "my-base",
                                            "roles": ["finetune-base"]})
    assert added.status_code == 200, added.text
    platform = client.app.state.platform  # type: ignore[attr-defined]
    assert "my-base" in [m.name for m in fine_tunes.trainable_models(platform)]
    container = fine_tunes.create_container(platform, name="t", base_model="MY-BASE", base_field="trainType")
    assert container["model"] == "my-base"
    run = start_run(platform, container)
    spec = json.loads((platform.settings.data_dir / "jobs" / run["sid"] / "spec.json").read_text())
    assert spec["base_model"] == "my-base" and spec["base_model_path"] == added.json()["path"]


def test_a_fine_tune_that_cannot_fit_in_ram_is_refused_before_anything_starts(client: TestClient, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:

    from qfnb.local.domain.training import fine_tunes
    from qfnb.local.engines.store import byom
    from tests.store.fine_tune_runs import assert_refused_for_ram
    from tests.store.test_model_store import _hf_dir

    client.post(MODELS_ROUTE, json={"path": str(_hf_dir(tmp_path / "hf")), "name": "my-base"})
    platform = client.app.state.platform  # type: ignore[attr-defined]
    assert byom.parameter_count(tmp_path / "hf") == 16
    container = fine_tunes.create_container(platform, name="t", base_model="my-base", base_field="trainType")
    assert_refused_for_ram(platform, container, monkeypatch)
