"""Adding a train mode is one row in the mode table and one loss class (docs/architecture.md, "Adding a
train mode: ORPO"): with only those two, the console takes the mode, checks its data in its format, fills in
its hyperparameters, lists it, writes its ``spec.json``, and the worker trains it with the class."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from platform_helpers import Signer, console

from qfnb.local.training import modes
from qfnb.local.training.data import DataError
from qfnb.local.training.preference import DPOTask, JudgedRow, PairRow
from qfnb.local.training.spec import Hyper, parse_spec
from qfnb.protocol.console.checkpoints import PREFERENCE_SCORE, REWARD_MARGIN
from qfnb.protocol.console.train_modes import MODE_TABLE, ModeRow

if TYPE_CHECKING:
    from torch import Tensor


class ORPOTask(DPOTask):
    """ORPO (Hong et al. 2024): the chosen answer's loss plus ``beta`` times the odds-ratio loss of the
    chosen answer over the rejected one; no reference model."""

    def reference_logps(self, model: Any, rows: Sequence[PairRow | JudgedRow]) -> None:
        for row in rows:
            if isinstance(row, PairRow):
                row.ref = (0.0, 0.0)  # no reference: the log-ratios are the policy's own log-probabilities

    def objective(self, logratio: Tensor, extra: Tensor) -> tuple[Tensor, dict[str, float]]:
        import torch

        n = logratio.shape[0] // 2
        chosen, rejected = logratio[:n], logratio[n:]

        def log_odds(logp: Tensor) -> Tensor:
            return logp - torch.log(-torch.expm1(logp))

        ratio = log_odds(chosen) - log_odds(rejected)
        loss = -chosen.mean() - self.hyper.beta * torch.nn.functional.logsigmoid(ratio).mean()
        seen = ratio.detach()
        return loss, {"reward_accuracy": float((seen > 0).float().mean()), "reward_margin": float(seen.mean())}


#: the row (its data is DPO's pairs; TRL's ORPO calls its odds-ratio weight ``beta`` too)
ORPO = ModeRow("ORPO", "prompt + chosen + rejected, as DPO's", "pairs",
                 scores=("evalLoss", PREFERENCE_SCORE, REWARD_MARGIN), cost=1.0, tokens=" (a pair)",
                 hyper={"beta": 0.1})

PAIRS = [[{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}] for i in range(5)]
JUDGED = [[{"prompt": "q", "chosen": "good"}]]


@pytest.fixture
def orpo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mode added: its row, and its class registered under its name."""
    monkeypatch.setitem(MODE_TABLE, "ORPO", ORPO)
    monkeypatch.setitem(modes.TRAINERS, "ORPO", partial(modes.PreferenceMode, ORPOTask))


def _task(client: Any, job: str, rows: list[Any], key: str) -> dict[str, Any]:
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    assert client.put(f"/bos/my-bucket/{key}", content=body, auth=Signer()).status_code == 200
    answer: dict[str, Any] = console(client, "/v2/finetuning", {
        "jobId": job, "parameterScale": "LoRA", "hyperParameterConfig": {"epoch": 1},
        "datasetConfig": {"sourceType": "Bos", "versions": [{"versionBosUri": f"bos:/my-bucket/{key}"}],
                          "splitRatio": 20}}, Action="CreateFineTuningTask")
    return answer


@pytest.mark.usefixtures("orpo")
def test_a_new_mode_is_one_row_and_one_loss_class(client: Any, tmp_path: Path) -> None:
    job = console(client, "/v2/finetuning", {"name": "j", "model": "tiny-chat", "trainMode": "orpo"},
                  Action="CreateFineTuningJob")["result"]["jobId"]
    bad = _task(client, job, JUDGED, "judged.jsonl")
    assert bad["message"] == ("datasetConfig.versions[0]: line 1: looks like KTO (prompt + chosen or rejected) data; "
                              "ORPO wants prompt + chosen + rejected, as DPO's")
    task = _task(client, job, PAIRS, "pairs.jsonl")["result"]["taskId"]
    (path,) = tmp_path.rglob(f"jobs/{task}/spec.json")
    raw = json.loads(path.read_text())
    assert raw["train_mode"] == "ORPO" and raw["hyper"]["beta"] == 0.1 and "desirableWeight" not in raw["hyper"]
    assert [json.loads(x).keys() for x in (path.parent / "train.jsonl").read_text().splitlines()] == [
        {"prompt", "chosen", "rejected"}] * 4
    mode = modes.mode_for(parse_spec(raw))  # the worker's dispatch
    assert isinstance(mode, modes.PreferenceMode) and mode.task_class is ORPOTask
    listed = console(client, "/v2/finetuning", {}, Action="DescribeFineTuningSupportModels")["result"]
    offered = {m["trainMode"]: m for m in listed[0]["supportTrainMode"]}
    keys = [c["key"] for c in offered["ORPO"]["supportParameterScale"][0]["supportHyperParameterConfig"]]
    assert "beta" in keys and "desirableWeight" not in keys


def test_the_orpo_class_prefers_the_chosen_answer() -> None:
    import torch

    task = ORPOTask(Hyper(beta=0.5), pad_id=0)
    chosen = torch.tensor([-3.0], requires_grad=True)
    loss, stats = task.objective(torch.cat([chosen, torch.tensor([-2.0])]), torch.zeros(0))
    loss.backward()  # type: ignore[no-untyped-call]
    assert chosen.grad is not None and float(chosen.grad) < 0  # a step raises the chosen answer's probability
    assert stats["reward_accuracy"] == 0.0 and stats["reward_margin"] < 0  # the rejected one is likelier now
    better, _ = task.objective(torch.tensor([-2.0, -3.0]), torch.zeros(0))
    assert float(better) < float(loss.detach())


def test_every_row_of_the_table_has_its_trainer_here() -> None:
    for name, row in MODE_TABLE.items():  # a rewarded mode has a loop of its own (rft.train), the others a class
        assert (name in modes.TRAINERS) != row.rewarded, name
    assert set(modes.TRAINERS) <= set(MODE_TABLE)
    with pytest.raises(DataError, match="a rewarded mode"):
        modes.mode_for(parse_spec({"base_model": "m", "train_file": "t.jsonl", "train_mode": "RFT"}))
