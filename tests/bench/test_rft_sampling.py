"""bench/rft_sampling.py's core on a tiny Gemma 3: both arms timed on the same prompts (before: ``generate``'s own
sampling on one thread; now: ``Policy.sample``), and the thread count and training mode left as they were."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench import rft_sampling as bench

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")


def test_one_draw_is_timed_as_before_and_as_now(tmp_path: Path) -> None:
    import torch
    from tiny_models import build_tiny_gemma

    policy = bench.load_policy(build_tiny_gemma(tmp_path / "model"))
    threads = torch.get_num_threads()
    prompts = bench.support_prompts(3)
    assert len(set(prompts)) == 3
    result = bench.time_draws(policy, prompts, group=2, new_tokens=4, reps=2)
    for arm in bench.ARMS:
        assert len(result[arm]["seconds"]) == 2 and all(s > 0 for s in result[arm]["seconds"])
        assert all(3 * 2 <= n <= 3 * 2 * 4 for n in result[arm]["tokens"])  # 3 prompts x 2 answers, 1-4 tokens
    assert result["ratio_before_over_now"] == pytest.approx(
        result["before"]["median_seconds"] / result["now"]["median_seconds"], abs=0.01)
    assert torch.get_num_threads() == threads and policy.model.training
