"""``%qftrain --mode RFT --reward``: the reward function named on the line (a notebook function or
``module:function``) reaches the trainer, checked before anything starts; the dashboard's chart and
progress line carry a RFT run's reward; ``--attach --reward`` gives a re-attached run its rewards."""

from __future__ import annotations

import operator
import threading
from typing import Any

import pytest
from IPython.core.error import UsageError
from nb_doubles import use_trainer

from qfnb.notebook.training import attach as attach_mod
from qfnb.notebook.training.dashboard_html import loss_chart
from qfnb.notebook.training.state import TrainingState
from qfnb.trainer.consts import ActionState
from qfnb.trainer.event import Event


def test_the_reward_on_the_line_reaches_the_trainer(ip) -> None:  # type: ignore[no-untyped-def]
    made = use_trainer(ip, steps=2, step_time=0.01, gate=threading.Event())

    def says_yes(prompt: str, completion: str, **kw: Any) -> float:
        return float("yes" in completion)

    ip.user_ns["says_yes"] = says_yes
    ip.run_line_magic("qftrain", "--dataset demo.jsonl --mode rft --reward says_yes -o dash")
    assert made[0].spec.mode == "RFT" and made[0].spec.reward is says_yes
    ip.run_line_magic("qftrain", "--dataset demo.jsonl --mode RFT --reward operator:contains -o dash2")
    assert made[1].spec.reward is operator.contains  # module:function, imported in this kernel


@pytest.mark.parametrize(("line", "said"), [
    ("--dataset demo.jsonl --mode RFT", "--mode RFT needs --reward module:function"),
    ("--dataset demo.jsonl --reward operator:contains", "--reward is for --mode RFT, not SFT"),
    ("--dataset demo.jsonl --mode RFT --reward nosuchmodule_xyz:fn", "--reward: cannot import 'nosuchmodule_xyz:fn'"),
    ("--dataset demo.jsonl --mode PPO --reward operator:contains", "--mode: must be one of SFT, PostPretrain"),
])
def test_a_wrong_mode_or_reward_is_refused_before_anything_starts(ip, line: str, said: str) -> None:  # type: ignore[no-untyped-def]
    made = use_trainer(ip, steps=2, step_time=0.01, gate=threading.Event())
    with pytest.raises(UsageError, match=said):
        ip.run_line_magic("qftrain", line)
    assert made == []


def test_the_dashboard_charts_the_reward_and_says_its_moving_mean() -> None:
    st = TrainingState(title="rft")
    st.apply(Event("train", ActionState.Running, "Running",
                   {"currentStep": 2, "totalSteps": 4, "lossCurve": [[1, 0.1], [2, 0.2]],
                    "rewardCurve": [[1, 0.25], [2, 0.75]], "rewardMeanCurve": [[1, 0.25], [2, 0.5]],
                    "evalRewardCurve": [[2, 0.5]]}, action_class="TrainAction"))
    assert st.reward == [(1, 0.25), (2, 0.75)] and st.eval_reward == [(2, 0.5)]
    assert "reward 0.500 (moving mean)" in st.progress_text()
    without = TrainingState(title="rft", loss=st.loss)
    assert loss_chart(st)[:8] == b"\x89PNG\r\n\x1a\n" and loss_chart(st) != loss_chart(without)  # the reward axis


def test_an_attached_rft_run_without_its_reward_says_how_to_go_on(ip) -> None:  # type: ignore[no-untyped-def]
    detail = {"taskId": "task-1", "runStatus": "Running", "currentStep": 1, "totalSteps": 4, "lossCurve": [],
              "rewardSource": "client", "rewardRequestsPending": 1}
    dash = attach_mod.attach("task-1", fetch=lambda task: dict(detail), stop=lambda task: None, interval=0.05,
                             show=False)
    try:
        assert any("re-attach with %qftrain --attach task-1 --reward module:function" in line
                   for line in dash.state.log)
    finally:
        detail["runStatus"] = "Stopped"
