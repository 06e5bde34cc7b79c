"""OpenAI's fine-tuning API on a real daemon with the real fine-tune base (Gemma 3 270M, LoRA, the
real worker), a few DPO steps: files checked, the job run, its checkpoints with a held-out preference
score, the tuned model chatting under its ``fine_tuned_model`` name with no restart, and
``compare_preference`` scoring base and tuned on held-out pairs with real log-probabilities (by default in a
forward pass over the base's transformers weights and the run's adapter: ``likelihood_by``)."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.backend.daemon import ensure_daemon
from qfnb._core.config import Config, embedded_config
from qfnb.evaluation.runs.preference import compare_preference
from qfnb.local.engines.llama.process.command import find_binary
from qfnb.protocol.console.model_names import LOCAL_FINETUNE_BASE

pytestmark = [pytest.mark.real_model, pytest.mark.slow,
              pytest.mark.skipif(find_binary() is None, reason="llama-server is not built (scripts/bootstrap.sh)")]
openai = pytest.importorskip("openai")
log = logging.getLogger(__name__)

QUESTIONS = ["What is the capital of France?", "What colour is the sky?", "How many legs has a cat?",
             "What is 2 + 2?", "Who wrote Hamlet?", "What is water made of?", "What do bees make?",
             "Which planet is red?", "What is the opposite of hot?", "What animal barks?",
             "What is frozen water called?", "How many days are in a week?"]
ANSWERS = ["Paris.", "Blue.", "Four.", "Four.", "Shakespeare.", "Hydrogen and oxygen.", "Honey.", "Mars.",
           "Cold.", "A dog.", "Ice.", "Seven."]


def pair(question: str, answer: str) -> dict[str, Any]:
    """The preferred answer opens with "Ahoy!", the rejected one does not: a style the base lacks."""
    return {"input": {"messages": [{"role": "user", "content": question}]},
            "preferred_output": [{"role": "assistant", "content": f"Ahoy! {answer}"}],
            "non_preferred_output": [{"role": "assistant", "content": answer}]}


def lines(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_a_dpo_job_through_the_openai_sdk_and_its_model_compared_with_the_base(tmp_path: Path) -> None:
    import qfnb

    sdk = qfnb.openai_client(data_dir=tmp_path / "data", timeout=600, max_retries=0)
    rows = [pair(q, a) for q, a in zip(QUESTIONS, ANSWERS, strict=True)]
    train = sdk.files.create(file=("train.jsonl", io.BytesIO(lines(rows[:6]))), purpose="fine-tune")
    valid = sdk.files.create(file=("valid.jsonl", io.BytesIO(lines(rows[6:]))), purpose="fine-tune")
    started = time.monotonic()
    job = sdk.fine_tuning.jobs.create(model=LOCAL_FINETUNE_BASE, training_file=train.id, validation_file=valid.id,
                                      suffix="ahoy", method={"type": "dpo", "dpo": {"hyperparameters": {
                                          "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 2}}})
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(2)
        job = sdk.fine_tuning.jobs.retrieve(job.id)
    trained = time.monotonic() - started
    assert job.status == "succeeded", job.error
    checkpoints = sdk.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and all(c.metrics.model_extra.get("valid_preference_accuracy") is not None
                               for c in checkpoints), [c.metrics for c in checkpoints]

    answer = sdk.chat.completions.create(model=job.fine_tuned_model, max_tokens=12, temperature=0,
                                         messages=[{"role": "user", "content": QUESTIONS[0]}])
    assert answer.choices[0].message.content

    held_out = tmp_path / "held_out.jsonl"  # the validation pairs: never trained on
    held_out.write_bytes(lines(rows[6:]))
    started = time.monotonic()
    config = embedded_config(Config.from_env(), ensure_daemon(tmp_path / "data"))  # the daemon sdk talks to
    result = compare_preference(job.fine_tuned_model, LOCAL_FINETUNE_BASE, held_out, config=config)
    compared = time.monotonic() - started
    log.warning("DPO job %.0f s; compare %.0f s; %s", trained, compared, result.verdict)
    assert len(result.pairs) == 6 and all(p.base_margin == p.base_margin for p in result.pairs)  # real numbers
    # tuning moved it toward "Ahoy!" on prompts it never saw, on (nearly) every pair
    assert result.likelihood.wins >= 5 and result.base_prefers < result.tuned_prefers, result.verdict
    # the platform trained it: it has the base's transformers weights and the run's adapter, and scored by them
    assert result.likelihood_by == "forward", result.to_dict()["likelihood"]
    # the verdict is the answers': both models answered each held-out prompt, read for degeneration first
    assert len(result.answers) == 6 and all(a.tuned_answer and a.base_answer for a in result.answers)
    assert result.p_value == result.by_answers.p_value and "Second line, by likelihood" in result.verdict
