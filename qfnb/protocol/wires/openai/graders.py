"""OpenAI's graders for reinforcement fine-tuning, checked before a job is queued (pure): the
declarative ones safe to run without user code -- ``string_check`` and ``text_similarity`` (their
``input``/``reference`` templates name ``{{sample.output_text}}`` and ``{{item.<field>}}``), and a
``multi`` grader combining them with an arithmetic ``calculate_output`` -- are handed to the RFT trainer,
which scores them (:mod:`qfnb.protocol.console.rewards`); a ``python`` grader is refused: user code
never runs in the shared daemon, a reward function runs in the user's own process with
``LLMFinetune(train_mode="RFT", reward=fn)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qfnb.protocol.console.rewards import grader_error
from qfnb.protocol.errors import ProtocolError

__all__ = ["check_grader"]

PYTHON_REFUSAL = ("python graders run user code, and user code never runs in the shared local daemon; write the "
                  "reward as a Python function and train with LLMFinetune(train_type=..., dataset=..., "
                  "train_mode=\"RFT\", reward=fn): it runs in your own process")
#: the fields of each grader type the platform keeps (the rest of OpenAI's, e.g. a model grader's, are not run)
_KEPT = {"string_check": ("type", "name", "input", "reference", "operation"),
         "text_similarity": ("type", "name", "input", "reference", "evaluation_metric"),
         "multi": ("type", "name", "graders", "calculate_output")}


def check_grader(raw: Any, field: str = "grader") -> dict[str, Any]:
    """``raw`` as a grader this platform runs, or ProtocolError naming the field."""
    if isinstance(raw, Mapping) and raw.get("type") == "python":
        raise ProtocolError(f"{field}.type", PYTHON_REFUSAL)
    problem = grader_error(raw)
    if problem is not None:
        raise ProtocolError(f"{field}.{problem[0]}" if problem[0] else field, problem[1])
    return _kept(raw)


def _kept(grader: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: grader[k] for k in _KEPT[grader["type"]] if k in grader}
    if grader["type"] == "multi":
        kept["graders"] = {name: _kept(g) for name, g in grader["graders"].items()}
    return kept
