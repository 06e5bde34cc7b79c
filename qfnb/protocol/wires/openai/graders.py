"""OpenAI's graders for reinforcement fine-tuning, checked before a job is queued (pure): the
declarative ones safe to run without user code, ``string_check`` and ``text_similarity`` (their
``input``/``reference`` templates name ``{{sample.output_text}}`` and ``{{item.<field>}}``), are
handed to the RFT trainer, which scores them; a ``python`` grader is refused: user code never runs
in the shared daemon, a reward function runs in the user's own process with
``LLMFinetune(train_mode="RFT", reward=fn)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qfnb.protocol.console.rewards import grader_problem
from qfnb.protocol.errors import ProtocolError

__all__ = ["check_grader"]

STRING_OPS = ("eq", "ne", "like", "ilike")
#: text_similarity metrics graded here (cosine needs an embedding model; gleu and meteor a library not kept)
SIMILARITY = ("fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_l")
PYTHON_REFUSAL = ("python graders run user code, and user code never runs in the shared local daemon; write the "
                  "reward as a Python function and train with LLMFinetune(train_type=..., dataset=..., "
                  "train_mode=\"RFT\", reward=fn): it runs in your own process")


def check_grader(raw: Any, field: str = "grader") -> dict[str, Any]:
    """``raw`` as a grader this module runs, or ProtocolError naming the field."""
    if not isinstance(raw, Mapping):
        raise ProtocolError(field, "must be an object with a 'type'")
    kind = raw.get("type")
    if kind == "python":
        raise ProtocolError(f"{field}.type", PYTHON_REFUSAL)
    if kind not in ("string_check", "text_similarity"):
        raise ProtocolError(f"{field}.type", f"must be 'string_check' or 'text_similarity' on the local platform "
                            f"(model graders and multi graders are not run here), got {kind!r:.40}")
    for key in ("input", "reference"):
        if not isinstance(raw.get(key), str):
            raise ProtocolError(f"{field}.{key}", "is required: a template such as '{{sample.output_text}}'")
    if kind == "string_check" and raw.get("operation") not in STRING_OPS:
        raise ProtocolError(f"{field}.operation", f"must be one of {', '.join(STRING_OPS)}, got "
                            f"{raw.get('operation')!r:.40}")
    if kind == "text_similarity" and raw.get("evaluation_metric") not in SIMILARITY:
        raise ProtocolError(f"{field}.evaluation_metric", f"must be one of {', '.join(SIMILARITY)} on the local "
                            f"platform, got {raw.get('evaluation_metric')!r:.40}")
    problem = grader_problem(raw)
    if problem is not None:
        raise ProtocolError(f"{field}.{problem[0]}" if problem[0] else field, problem[1])
    keys = ("type", "name", "input", "reference", "operation" if kind == "string_check" else "evaluation_metric")
    return {k: raw[k] for k in keys if k in raw}

