"""The mode table (:mod:`qfnb.protocol.console.train_modes`) and the one typed training request
(:mod:`qfnb.protocol.console.train_ask`)."""

from __future__ import annotations

import pytest

from qfnb.protocol.console import train_formats
from qfnb.protocol.console.train_ask import AskError, TrainAsk, TrainData, v2_data
from qfnb.protocol.console.train_modes import DEFAULT_MODE, MODE_TABLE, REWARDED, ModeRow, mode_row, train_mode
from qfnb.protocol.console.training import DEFAULTS, FLAGS, LIMITS, hyper_problem

DATA = TrainData((("trainset", "ds-1"),))


@pytest.mark.parametrize("mode", MODE_TABLE.values(), ids=list(MODE_TABLE))
def test_each_rows_own_hyperparameters_are_bounded_and_default_inside_their_bounds(mode: ModeRow) -> None:
    """A row's hyperparameters are its own (bounded in LIMITS, or a FLAG) or everyone's with the mode's measured
    default (``learningRate``), each default inside its bounds; so are a base's own."""
    for values in (mode.hyper, *mode.per_base.values()):
        for key, value in values.items():
            assert key in LIMITS or key in FLAGS, key
            assert hyper_problem(key, value) is None, key
    own = set(mode.hyper) - set(DEFAULTS)
    assert all(key not in MODE_TABLE[DEFAULT_MODE].defaults() for key in own)  # SFT gets none of them
    assert mode.cost >= 1.0 and mode.scores and mode.data


def test_the_table_answers_what_the_name_tests_used_to() -> None:
    assert DEFAULT_MODE == "SFT" and mode_row(None).default and REWARDED == ("RFT",)
    assert [m for m, row in MODE_TABLE.items() if not row.records] == ["SFT"]
    assert [m for m, row in MODE_TABLE.items() if row.packed] == ["PostPretrain"]
    assert [m for m, row in MODE_TABLE.items() if row.generation_metric] == ["SFT"]
    assert tuple(MODE_TABLE) == train_formats.MODES and train_mode("post_pretrain") == "PostPretrain"


def test_an_ask_fills_in_its_own_modes_defaults_only() -> None:
    dpo = TrainAsk.build("dpo", "tiny-chat", DATA, {"epoch": 2})
    kto = TrainAsk.build("KTO", "tiny-chat", DATA, {"desirableWeight": 2})
    assert dpo.mode.name == "DPO" and dict(dpo.hyper) == {"epoch": 2}
    assert dpo.run_hyper["beta"] == 0.1 and "desirableWeight" not in dpo.run_hyper and dpo.run_hyper["epoch"] == 2
    assert kto.run_hyper["desirableWeight"] == 2.0 and isinstance(kto.run_hyper["desirableWeight"], float)
    assert kto.run_hyper["undesirableWeight"] == 1.0
    assert "beta" not in TrainAsk.build(None, "tiny-chat", DATA, None).run_hyper
    assert TrainAsk.build("RFT", "tiny-chat", DATA, {}).run_hyper["groupSize"] == 4


def test_an_ask_names_the_field_it_cannot_take() -> None:
    with pytest.raises(AskError) as err:
        TrainAsk.build("DPO", "tiny-chat", DATA, {"beta": 0}, "method.dpo.hyperparameters")
    assert err.value.field == "method.dpo.hyperparameters.beta" and "(0, 100]" in err.value.message
    with pytest.raises(ValueError, match=r"^method\.type: must be one of SFT, PostPretrain, DPO, KTO, RFT"):
        TrainAsk.build("ORPO", "tiny-chat", DATA, {}, mode_field="method.type")
    with pytest.raises(AskError, match=r"^trainset: at least one dataset"):
        TrainAsk.build("SFT", "tiny-chat", TrainData(()), {})


def test_v2_data_reads_the_versions_and_split_and_names_a_bad_one() -> None:
    data = v2_data({"versions": [{"versionId": 7}, {"versionBosUri": "bos:/b/x.jsonl"}], "splitRatio": 10})
    assert data.train == (("datasetConfig.versions[0]", 7), ("datasetConfig.versions[1]", "bos:/b/x.jsonl"))
    assert data.split == ("datasetConfig.splitRatio", 10) and data.held_out == ()
    with pytest.raises(AskError, match=r"^datasets\.versions\[1\]: needs versionId or versionBosUri"):
        v2_data({"versions": [{"versionId": 7}, {}]}, "datasets")
    with pytest.raises(AskError, match=r"^datasetConfig\.versions: is required"):
        v2_data({"versions": []})
