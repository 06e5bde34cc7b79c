"""A fine-tune's checkpoints compared in one paired ``%qfeval`` run, and one name everywhere: the launch
name is what ``%qfmodels`` and the ``%qfeval`` report show, the id beside it (issue 45)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.local_platform import ServedPlatform, served_platform

ROWS = [{"prompt": f"question {i}", "response": f"tiny-chat: question {i}"} for i in range(4)]


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    """The local platform (engine doubles, the stand-in worker) as qfnb's default backend; its model
    store (the checkpoints' adapters) under ``tmp_path``."""
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "models"))
    with served_platform(tmp_path / "platform") as served:
        served.as_default_backend(monkeypatch)
        yield served


def _deployed_tune(name: str) -> Any:
    from qfnb.dataset import Dataset
    from qfnb.notebook.training.run import deploy_config
    from qfnb.trainer import LLMFinetune, TrainConfig

    rows = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(12)]
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(rows), name=name,
                          deploy_config=deploy_config(name),
                          train_config=TrainConfig(epoch=1, batch_size=1, checkpoints=5, trainset_rate=25,
                                                   extras={"stepSeconds": 0.01,
                                                           "fakeEvalLosses": [3.2, 2.9, 3.5, 5.1, 6.8]}))
    trainer.run()
    return trainer


def _adapter_of(platform: ServedPlatform, step: int) -> Path:
    """The stored adapter of the run's checkpoint at ``step``."""
    (run,) = platform.app.state.platform.store.all("runs")
    return next(Path(c["path"]) for c in run["checkpointList"] if c["step"] == step)


def test_qfeval_compares_checkpoints_in_one_paired_run_with_names_that_say_which(  # type: ignore[no-untyped-def]
        ip, platform, tmp_path) -> None:
    trainer = _deployed_tune("helpdesk-faq")
    assert trainer.output["best_checkpoint"] == 4  # held-out losses 3.2, 2.9, 3.5, 5.1, 6.8 at steps 2, 4, 5, 7, 9
    ep = trainer.output["service_endpoint"]
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    report = ip.run_line_magic("qfeval", f"--models {ep}@best,{ep}@step-7,Tiny-Chat --dataset {data} "
                                         "--metrics exact_match --compare Tiny-Chat -o r")
    engines = platform.registry.engines
    # each checkpoint was asked every item through its own adapter, loaded with its run's other checkpoints
    assert {name: len(e.calls) for name, e in engines.items() if e.calls} == {
        f"{ep}@best": 4, f"{ep}@step-7": 4, "tiny-chat": 4}
    assert platform.registry.adapters[f"{ep}@best"][1] == _adapter_of(platform, 4)
    assert platform.registry.adapters[f"{ep}@step-7"][1] == _adapter_of(platform, 7)
    assert _adapter_of(platform, 4) in platform.registry.siblings[f"{ep}@step-7"]
    r = ip.user_ns["r"]
    assert r.samples_df[f"{ep}@best (step 4)/output"].iloc[0] == f"adapter {ep}@best: question 0"
    # the rows say which checkpoint each is: @best with the step it stands for, @step-7 as typed
    best, seven = f"{ep}@best (step 4)", f"{ep}@step-7"
    assert list(report.metrics.index) == [best, seven, "Tiny-Chat"]
    assert best in repr(report) and seven in report.to_html()
    # one paired run against the base model: every item compared, checkpoint by checkpoint
    cmp = report.comparison
    assert cmp.baseline == "Tiny-Chat" and cmp.models == [best, seven]
    for tag in (best, seven):
        row = cmp.row(tag, "exact_match")
        assert (row.n, row.wins, row.ties, row.losses) == (4, 0, 0, 4) and row.test == "McNemar exact"
        assert row.sentence.startswith(f"{tag} ")
    # --compare takes a checkpoint as typed
    again = ip.run_line_magic("qfeval", f"--models {ep}@best,{ep}@step-7 --dataset {data} --metrics exact_match "
                                        f"--compare {ep}@best")
    assert again.comparison.baseline == best and again.comparison.models == [seven]


def test_one_name_everywhere_qfmodels_and_the_qfeval_report(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qfnb.notebook.models import discovery

    trainer = _deployed_tune("Helpdesk-FAQ.v2")
    ep = trainer.output["service_endpoint"]
    assert ep.startswith("helpdesk_faq_v2_") and len(ep) > len("helpdesk_faq_v2_")  # the launch name, an id after
    ip.magics_manager.registry["QfnbMagics"].list_models = discovery.list_models  # the platform's own list
    listing = ip.run_line_magic("qfmodels", "")
    (row,) = [r for r in listing.rows if r.kind == "endpoint"]
    assert row.name == ep and row.served_by.startswith("service Helpdesk-FAQ.v2 (")  # its service's id beside
    assert f"{ep}    " in repr(listing) and "service Helpdesk-FAQ.v2 (" in listing._repr_html_()
    # the endpoint %qfmodels lists is a --models word as it stands (no ep_ prefix, no endpoint:)
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    report = ip.run_line_magic("qfeval", f"--models {ep},Tiny-Chat --dataset {data} --metrics exact_match "
                                         "--compare Tiny-Chat")
    assert list(report.metrics.index) == [ep, "Tiny-Chat"] and report.comparison.models == [ep]
    assert len(platform.registry.engines[ep].calls) == 4  # asked through the deployed adapter
    assert f"{ep} " in repr(report)


def test_a_checkpoint_by_the_launch_name(ip, platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``--models NAME@best`` with the name given at launch (the model's name, not its endpoint)."""
    trainer = _deployed_tune("helpdesk-faq")
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    report = ip.run_line_magic("qfeval", f"--models helpdesk-faq@best,helpdesk-faq@step-7 --dataset {data} "
                                         "--metrics exact_match")
    assert trainer.output["best_checkpoint"] == 4
    assert list(report.metrics.index) == ["helpdesk-faq@best (step 4)", "helpdesk-faq@step-7"]
    ep = trainer.output["service_endpoint"]  # asked through that service's checkpoints
    assert platform.registry.adapters[f"{ep}@best"][1] == _adapter_of(platform, 4)
    assert platform.registry.adapters[f"{ep}@step-7"][1] == _adapter_of(platform, 7)
    assert {name: len(e.calls) for name, e in platform.registry.engines.items() if e.calls} == {
        f"{ep}@best": 4, f"{ep}@step-7": 4}
