"""bench/rft_sampling.py's core on a tiny Gemma 3: both arms timed on the same prompts, the old one a
``generate`` per prompt, the new one a single ``generate`` for the draw, and the thread count left as it was."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench import rft_sampling as bench

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")


def test_one_draw_is_timed_the_old_way_and_the_new(tmp_path: Path) -> None:
    import torch
    from tiny_models import build_tiny_gemma

    policy = bench.load_policy(build_tiny_gemma(tmp_path / "model"))
    threads = torch.get_num_threads()
    prompts = bench.support_prompts(3)
    assert len(set(prompts)) == 3
    result = bench.time_draws(policy, prompts, group=2, new_tokens=4, reps=2)
    assert result["old"]["generate_calls"] == 3 and result["new"]["generate_calls"] == 1
    for arm in bench.ARMS:
        assert len(result[arm]["seconds"]) == 2 and all(s > 0 for s in result[arm]["seconds"])
        assert all(3 * 2 <= n <= 3 * 2 * 4 for n in result[arm]["tokens"])  # 3 prompts x 2 answers, 1-4 tokens
    assert result["ratio_old_over_new"] == pytest.approx(
        result["old"]["median_seconds"] / result["new"]["median_seconds"], abs=0.01)
    assert torch.get_num_threads() == threads and policy.model.training
    assert "generate" not in vars(policy.model)  # the counting wrapper went
