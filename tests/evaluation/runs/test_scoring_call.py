"""Issue 92 §3: ``answer_logprobs`` budgeted on the client and counted: a call the budget cannot fit is
refused before anything is sent; one that fits settles to the tokens the platform scored, is in the
ledger, and ``/metrics`` counts the same tokens (the platform's app, an engine double that scores a
word a token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfnb._core.http.client import get_client
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.runtime import sync
from qfnb.evaluation.runs.scoring_call import LEDGER_API, scored_answers
from qfnb.usage import BudgetExceeded, budget
from tests.fakes.local_platform import ServedPlatform, served_platform
from tests.local.platform_doubles import FakeChat, FakeRegistry

pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py: own ledger, no budget

ITEMS = [{"messages": [{"role": "user", "content": "Greet me"}], "answers": ["one two", "three four five"]}]


class WordScorer(FakeChat):
    """Scores an answer at -1 a word, a token a word, counting the answers it scored."""

    scored = 0

    def answer_logprob(self, messages: list[dict[str, str]], answer: str) -> tuple[float, int]:
        WordScorer.scored += 1
        return -float(len(answer.split())), len(answer.split())


class WordRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return WordScorer(tag)


@pytest.fixture()
def scoring(tmp_path: Path) -> Iterator[ServedPlatform]:
    with served_platform(tmp_path / "platform", registry=WordRegistry()) as served:
        yield served


def _score(served: ServedPlatform) -> dict[str, Any]:
    return sync.run(scored_answers(get_client(served.config(embedded=True)), "tiny-chat", ITEMS))


def _metrics_tokens(served: ServedPlatform) -> float:
    text = httpx.get(served.url + "/metrics", headers={"Authorization": f"Bearer {served.bearer_token()}"}).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("qfnb_prompt_tokens_total{") and 'route="/fine_tuning/answer_logprobs"' in line)


def test_a_scoring_call_the_budget_cannot_fit_is_refused_unsent(scoring: ServedPlatform) -> None:
    WordScorer.scored = 0
    held = budget(tokens=3)
    with pytest.raises(BudgetExceeded, match="scoring 5 answer tokens under tiny-chat"):
        _score(scoring)
    assert WordScorer.scored == 0 and (held.spent_tokens, held.reserved_tokens) == (0, 0)
    assert [r for r in ledger_mod.default_ledger().rows() if r.api == LEDGER_API] == []


def test_a_scoring_call_is_settled_on_what_the_platform_scored_and_metrics_agree(scoring: ServedPlatform) -> None:
    held = budget(tokens=100)
    body = _score(scoring)
    assert body["data"] == [{"index": 0, "logprobs": [-2.0, -3.0], "tokens": [2, 3]}]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}
    assert (held.spent_tokens, held.reserved_tokens) == (5, 0)
    rows = [r for r in ledger_mod.default_ledger().rows() if r.api == LEDGER_API]
    assert [(r.model, r.prompt_tokens, r.total_tokens, r.platform) for r in rows] == [("tiny-chat", 5, 5, "local")]
    assert _metrics_tokens(scoring) == 5
