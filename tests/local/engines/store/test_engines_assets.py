"""Model asset assembly: slices found without importing their packages, sha256-checked, atomic and locked."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

import pytest

from qfnb.local.engines.store import assets
from qfnb.local.engines.store.assets import AssetError, GGUFAsset, concatenate_verified


@pytest.fixture()
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[GGUFAsset, bytes]:
    """Three part packages whose ``__init__`` raises: finding their data must not import them."""
    site = tmp_path / "site"
    blobs = [os.urandom(3000), os.urandom(5000), b"tail"]
    for i, blob in enumerate(blobs, 1):
        pkg = site / f"qfnbfake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('part packages must never be imported')\n")
        (pkg / "data" / f"part0{i}.bin").write_bytes(blob)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(blobs)
    asset = GGUFAsset(
        name="Fake",
        filename="fake.gguf",
        sha256=hashlib.sha256(whole).hexdigest(),
        parts=tuple((f"qfnbfake_part{i}", f"data/part0{i}.bin") for i in (1, 2, 3)),
    )
    return asset, whole


def test_assembles_verified_file_without_importing(fake_parts, tmp_path: Path) -> None:
    asset, whole = fake_parts
    target = tmp_path / "models" / "fake.gguf"
    out = concatenate_verified(assets.part_paths(asset), target, asset.sha256)
    assert out == target and target.read_bytes() == whole
    assert not any(m.startswith("qfnbfake") for m in sys.modules)
    assert [p.name for p in target.parent.iterdir() if ".tmp" in p.name] == []
    mtime = target.stat().st_mtime_ns
    concatenate_verified(assets.part_paths(asset), target, asset.sha256)  # verified via the stamp: no rewrite
    assert target.stat().st_mtime_ns == mtime


def test_corrupt_target_is_rebuilt(fake_parts, tmp_path: Path) -> None:
    asset, whole = fake_parts
    target = tmp_path / "fake.gguf"
    concatenate_verified(assets.part_paths(asset), target, asset.sha256)
    target.write_bytes(b"x" * len(whole))  # same size, different content and mtime
    concatenate_verified(assets.part_paths(asset), target, asset.sha256)
    assert target.read_bytes() == whole


def test_wrong_checksum_fails_and_leaves_nothing(fake_parts, tmp_path: Path) -> None:
    asset, _ = fake_parts
    target = tmp_path / "fake.gguf"
    with pytest.raises(AssetError, match="sha256") as err:
        concatenate_verified(assets.part_paths(asset), target, "0" * 64)
    assert "pip install 'qfnb[local]'" in str(err.value)
    assert not target.exists() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_missing_package_names_it_and_the_extra() -> None:
    asset = GGUFAsset(name="Nope", filename="n.gguf", sha256="0" * 64, parts=(("qfnb_no_such_part9", "data/x"),))
    with pytest.raises(AssetError, match="qfnb_no_such_part9") as err:
        assets.part_paths(asset)
    assert "pip install 'qfnb[local]'" in str(err.value)


def test_missing_slice_is_reported(fake_parts) -> None:
    asset, _ = fake_parts
    broken = GGUFAsset(name="Fake", filename="f", sha256=asset.sha256, parts=(("qfnbfake_part1", "data/gone.bin"),))
    with pytest.raises(AssetError, match=r"data/gone\.bin"):
        assets.part_paths(broken)


def test_concurrent_assembly_writes_once(fake_parts, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    asset, whole = fake_parts
    target = tmp_path / "fake.gguf"
    errors: list[BaseException] = []

    def go() -> None:
        try:
            concatenate_verified(assets.part_paths(asset), target, asset.sha256)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with caplog.at_level("INFO", logger="qfnb.local.engines.store.assets"):
        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and target.read_bytes() == whole
    assert sum("assembling" in r.getMessage() for r in caplog.records) == 1


def test_unknown_asset_name(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match=r"Qwen2\.5-Coder-0\.5B-Instruct"):
        assets.gguf_path("ERNIE-4.0")


def test_missing_minilm_files_name_the_minilm_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model").mkdir()
    monkeypatch.setattr(assets, "package_dir", lambda package, pip_name=None: tmp_path)
    with pytest.raises(AssetError, match=r"^all-MiniLM-L6-v2: model files missing"):
        assets.minilm_dir()


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["Qwen2.5-Coder-0.5B-Instruct", "Gemma-3-270M"])
def test_real_model_assets_match_their_pinned_sha256(name: str) -> None:
    path = assets.gguf_path(name)
    asset = assets.GGUF_ASSETS[name.lower()]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    assert digest.hexdigest() == asset.sha256
    assert assets.minilm_dir().joinpath("config.json").is_file()


@pytest.mark.real_model
def test_two_data_dirs_share_one_copy_of_the_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model store is per machine: platforms on two data dirs open the same file, and
    neither data dir holds weights."""
    from qfnb.local.engines import EngineRegistry

    paths = []
    for name in ("a", "b"):
        monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / name))
        paths.append(EngineRegistry(tmp_path / name).base_gguf("Gemma-3-270M"))
    assert paths[0] == paths[1] and os.path.samefile(paths[0], paths[1])
    assert paths[0].parent.name == f"sha256-{assets.GEMMA3_270M.sha256}"
    data_files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in data_files) < 1_000_000
