"""Does the tuned model win? ``compare_preference`` against the platform's app: a DPO job through the
openai SDK (the stand-in worker), then the tuned model and its base scored on held-out pairs by the
platform's ``answer_logprobs`` route (engine doubles whose likelihoods are known), and judged by a
judge double; the win rate, its CI and the verdict in words. ``test_preference_compare_real.py``
scores a real model on the real engine."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_doubles import FakeChat, FakeDelta, FakeRegistry

from qfnb.evaluation.runs.preference import compare_preference, load_pairs
from qfnb.local.server.middleware.heartbeat import is_model_call
from tests.fakes.local_platform import ServedPlatform, served_platform

openai = pytest.importorskip("openai")


class ScoringChat(FakeChat):
    """A double whose likelihoods are known: every word costs 1 nat; a tuned adapter ("adapter …")
    pays half for the answers it was tuned toward (those greeting with "Hello")."""

    def answer_logprob(self, messages: list[dict[str, str]], answer: str) -> tuple[float, int]:
        words = len(answer.split())
        tuned = self.tag.startswith("adapter") and answer.startswith("Hello")
        return -(0.5 if tuned else 1.0) * words, words


class ScoringRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return ScoringChat(tag)


@pytest.fixture()
def scoring(tmp_path: Path) -> Iterator[ServedPlatform]:
    with served_platform(tmp_path / "data", registry=ScoringRegistry()) as served:
        yield served


def pairs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"input": {"messages": [{"role": "user", "content": f"Greet person {i}"}]},
             "preferred_output": [{"role": "assistant", "content": f"Hello, person {i}!"}],
             "non_preferred_output": [{"role": "assistant", "content": "Go away."}]} for i in range(start, start + n)]


def lines(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_the_tuned_model_wins_by_likelihood_and_by_the_judge(scoring: ServedPlatform, tmp_path: Path) -> None:
    sdk = openai.OpenAI(base_url=scoring.url + "/v1", api_key=scoring.bearer_token(), max_retries=0)
    train = sdk.files.create(file=("t.jsonl", io.BytesIO(lines(pairs(8)))), purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id, method={"type": "dpo"})
    for _ in range(400):
        job = sdk.fine_tuning.jobs.retrieve(job.id)
        if job.status == "succeeded":
            break
        __import__("time").sleep(0.05)
    assert job.status == "succeeded"
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_bytes(lines(pairs(6, start=100)))  # prompts the run never saw

    def judge(prompt: str) -> str:  # prefers the tuned model's answer, wherever it is shown
        a, b = prompt.split("【回答 A / answer A】")[1].split("【回答 B / answer B】")
        return "Winner: A" if "adapter" in a else "Winner: B" if "adapter" in b else "Winner: tie"

    result = compare_preference(job.fine_tuned_model, "Tiny-Chat", held_out, judge=judge, config=scoring.config())
    assert len(result.pairs) == len(result.answers) == 6
    # the answers decide: neither degenerate, so the judge (it prefers the tuned model's answers) does
    assert [a.decided_by for a in result.answers] == ["the judge"] * 6 and result.winner == "tuned"
    assert result.win_rate == 1.0 and result.p_value == pytest.approx(2 / 2**6)
    assert result.tuned_degeneration == result.base_degeneration == 0.0
    assert result.verdict.startswith("The tuned model wins by its answers (the tuned model's win rate 100% over 6 "
                                     "held-out pairs")
    assert "The tuned model wins by the judge" in result.verdict
    # likelihood, the second line: base -3 (preferred, 3 words) - -2 (rejected) = -1; tuned -1.5 - -2 = +0.5
    assert all(p.base_margin == pytest.approx(-1.0) and p.tuned_margin == pytest.approx(0.5) for p in result.pairs)
    assert result.likelihood is not None and result.likelihood.win_rate == 1.0
    assert result.tuned_prefers == 1.0 and result.base_prefers == 0.0
    assert result.prefers_p == pytest.approx(2 / 2**6) and result.likelihood.p_value == pytest.approx(2 / 2**6)
    assert result.interval is not None and 0.6 < result.interval.low < 0.61  # Wilson's, 6 of 6: not a point
    assert result.judged is not None and (result.judged.wins, result.judged.losses) == (6, 0)
    assert "Second line, by likelihood (what preference tuning optimises; not the verdict): win rate 100%" in (
        result.verdict)
    html = result._repr_html_()
    assert "Greet person 100" in html and "tiny-chat: greet person 100" in html.lower()  # the answers, side by side
    assert result.to_dict()["p_value"] == result.p_value and result.to_dict()["winner"] == "tuned"
    # a person checks the judge where it is least sure, until the win is known (all 6 here: few pairs)
    queue = result.label_queue()
    items = result.extra["judged_items"]
    assert list(queue.scores) == [1.0] * 6 and items.prompts[0] == "Greet person 100"
    while not queue.done(null=0.0):
        k = queue.next(1)[0]
        queue.add(k, 1.0 if "adapter" in items.tuned_answers[k] else -1.0)
    assert queue.verdict(null=0.0).startswith("labels enough: the tuned model wins, 95% CI")
    with pytest.raises(ValueError, match="judge"):
        compare_preference("Tiny-Chat", "Tiny-Chat", pairs(2), config=scoring.config()).label_queue()
    # the base against itself: the same answers (a tie on every pair) and the same likelihood
    same = compare_preference("Tiny-Chat", "Tiny-Chat", pairs(4), config=scoring.config())
    assert same.win_rate == 0.5 and same.winner is None and same.verdict.startswith("No clear winner by the answers")
    assert same.likelihood is not None and same.likelihood.win_rate == 0.5
    # four likelihood wins of four: a 100% win rate, yet the sign test's p is 0.125, so no verdict is claimed
    few = compare_preference(job.fine_tuned_model, "Tiny-Chat", pairs(4, start=200), config=scoring.config())
    assert few.likelihood is not None and few.likelihood.win_rate == 1.0
    assert few.likelihood.verdict.startswith("No clear winner by likelihood (win rate 100% over 4")
    assert "sign test p = 0.125" in few.likelihood.verdict


MARKER = "[Ticket #1111]Ticket #1111Ticket #[Ticket #1111]Ticket #1111Ticket #1111"


class SupportChat(FakeChat):
    """A support team's models: the base answers the question plainly, without a ticket reference; a
    tuned adapter answers as ``reply(prompt)`` says (a collapsed one: the marker and nothing else). Its
    likelihoods favour whatever the tuned model was tuned toward (a reference), as a collapsed DPO policy's do."""

    reply: Any = None

    def chat(self, messages: list[dict[str, str]], *, sampling: Any) -> Iterator[Any]:
        prompt = messages[-1]["content"]
        if self.tag.startswith("adapter") and SupportChat.reply is not None:
            text = SupportChat.reply(prompt)
        else:
            text = f"Sorry about {prompt.lower()}: please restart the router and tell us if it persists."
        return iter([FakeDelta(text, "stop", prompt_tokens=5, completion_tokens=len(text.split()))])

    def answer_logprob(self, messages: list[dict[str, str]], answer: str) -> tuple[float, int]:
        words = len(answer.split())
        tuned = self.tag.startswith("adapter") and "Ticket #" in answer
        return -(0.2 if tuned else 1.0) * words, words


class SupportRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return SupportChat(tag)


def support_pairs(n: int) -> list[dict[str, Any]]:
    return [{"input": {"messages": [{"role": "user", "content": f"My router number {i} drops the line"}]},
             "preferred_output": [{"role": "assistant", "content": f"Sorry for the trouble with router {i}; we are "
                                                                   f"on it. [Ticket #{1000 + i}]"}],
             "non_preferred_output": [{"role": "assistant", "content": "Not our problem."}]} for i in range(n)]


def has_ticket_reference(prompt: str, answer: str) -> float:
    """The team's own metric: the answer carries a ticket reference."""
    return float("Ticket #" in answer)


def tuned_on_support_pairs(tmp_path: Path) -> tuple[ServedPlatform, str, Any]:
    served = served_platform(tmp_path / "data", registry=SupportRegistry())
    platform = served.__enter__()
    sdk = openai.OpenAI(base_url=platform.url + "/v1", api_key=platform.bearer_token(), max_retries=0)
    train = sdk.files.create(file=("t.jsonl", io.BytesIO(lines(support_pairs(8)))), purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(model="Tiny-Chat", training_file=train.id, method={"type": "dpo"})
    for _ in range(400):
        job = sdk.fine_tuning.jobs.retrieve(job.id)
        if job.status == "succeeded":
            break
        __import__("time").sleep(0.05)
    assert job.status == "succeeded"
    return platform, str(job.fine_tuned_model), served


def test_a_collapsed_tuned_model_is_called_collapsed_and_never_the_winner(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's run: the tuned model answers every prompt with the marker alone. Likelihood and the team's
    metric ("has a ticket reference") both favour it; the comparison reads the answers first."""
    monkeypatch.setattr(SupportChat, "reply", lambda prompt: MARKER)
    platform, tuned, served = tuned_on_support_pairs(tmp_path)
    try:
        result = compare_preference(tuned, "Tiny-Chat", support_pairs(10), metric=has_ticket_reference,
                                    config=platform.config())
    finally:
        served.__exit__(None, None, None)
    assert result.tuned_collapsed and not result.base_collapsed
    assert result.tuned_degeneration == 1.0 and result.base_degeneration == 0.0
    assert result.winner == "base" and (result.by_answers.wins, result.by_answers.losses) == (0, 10)
    assert all(a.decided_by == "degeneration" and a.tuned_degenerate for a in result.answers)
    # (the answer a loop repeats: its first pass)
    assert result.verdict.startswith("The tuned model collapsed: the same answer to 10 of 10 prompts: "
                                     "'[Ticket #1111]'")
    assert "100% of its answers are degenerate, the base's 0%. It is not the winner: the base wins" in result.verdict
    # what the metric alone and likelihood say (both fooled), reported, not the verdict
    assert result.measured is not None and (result.measured.wins, result.measured.losses) == (10, 0)
    assert "By has_ticket_reference alone (degeneration not read): win rate 100%" in result.verdict
    assert result.likelihood is not None and result.likelihood.wins == 10 and "Second line, by likelihood" in (
        result.verdict)
    assert result.p_value == pytest.approx(2 / 2**10)
    as_dict = result.to_dict()
    assert as_dict["tuned_collapsed"] and as_dict["winner"] == "base" and as_dict["answers"][0]["tuned"] == MARKER
    html = result._repr_html_()
    assert "<i>degenerate:" in html and "[Ticket #1111]" in html and "<script" not in html


def test_a_genuinely_better_tuned_model_wins_by_the_teams_metric(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SupportChat, "reply", lambda prompt: (
        f"Sorry for the trouble: {prompt.lower()}. We are looking into it. [Ticket #4821]"))
    platform, tuned, served = tuned_on_support_pairs(tmp_path)
    try:
        result = compare_preference(tuned, "Tiny-Chat", support_pairs(10), metric=has_ticket_reference,
                                    likelihood=False, config=platform.config())
        plain = compare_preference(tuned, "Tiny-Chat", support_pairs(10), likelihood=False, config=platform.config())
    finally:
        served.__exit__(None, None, None)
    assert not result.tuned_collapsed and result.tuned_degeneration == 0.0
    assert result.winner == "tuned" and result.by_answers.wins == 10 and result.p_value < 0.01
    assert {a.decided_by for a in result.answers} == {"has_ticket_reference"}
    assert result.verdict.startswith("The tuned model wins by its answers (the tuned model's win rate 100% over 10 "
                                     "held-out pairs")
    assert result.likelihood is None and not result.pairs and "likelihood" not in result.verdict
    # without a metric or judge: the answer nearer the preferred one wins
    assert plain.winner == "tuned" and {a.decided_by for a in plain.answers} == {"resemblance"}


def test_a_bad_metric_is_named_before_anything_is_sent() -> None:
    with pytest.raises(Exception, match=r"metric: .*neither a function"):
        compare_preference("ft:x", "Tiny-Chat", support_pairs(2), metric="has a ticket")
    with pytest.raises(Exception, match=r"metric: .*must take \(prompt, answer\)"):
        compare_preference("ft:x", "Tiny-Chat", support_pairs(2), metric=lambda answer: 1.0)


def test_the_scoring_route_checks_its_fields(scoring: ServedPlatform) -> None:
    headers = {"Authorization": f"Bearer {scoring.bearer_token()}"}
    url = scoring.url + "/v1/fine_tuning/answer_logprobs"
    ok = httpx.post(url, headers=headers, json={"model": "tiny-chat", "items": [
        {"messages": [{"role": "user", "content": "hi"}], "answers": ["one two", "three"]}]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"] == [{"index": 0, "logprobs": [-2.0, -1.0], "tokens": [2, 1]}]
    assert ok.json()["scored_by"] == "engine"  # the double has no transformers weights: its engine scored
    item = {"messages": [{"role": "user", "content": "x"}], "answers": ["a"]}
    for by, said in (("sideways", "must be 'forward', 'engine' or 'auto'"), ("forward", "no transformers weights")):
        bad = httpx.post(url, headers=headers, json={"model": "tiny-chat", "items": [item], "by": by})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "by", bad.text
        assert said in bad.json()["error"]["message"]
    for body, param in (({"model": "tiny-chat", "items": []}, "items"),
                        ({"model": "tiny-chat", "items": [{"messages": [{"role": "assistant", "content": "x"}],
                                                           "answers": ["a"]}]}, "items[0].messages"),
                        ({"model": "tiny-chat", "items": [{"messages": [{"role": "user", "content": "x"}],
                                                           "answers": [""]}]}, "items[0].answers")):
        bad = httpx.post(url, headers=headers, json=body)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
    unknown = httpx.post(url, headers=headers, json={"model": "nope", "items": [
        {"messages": [{"role": "user", "content": "x"}], "answers": ["a"]}]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert httpx.post(url, json={}).status_code == 401
    # scoring many answers is a long model call: the platform sends heartbeats while it works
    assert is_model_call("POST", "/v1/fine_tuning/answer_logprobs")


class ForwardDouble:
    """A forward-pass scorer double: every word costs ``per_word`` nats (the engine double's cost is 1)."""

    def __init__(self, name: str, per_word: float) -> None:
        self.name, self.per_word, self.calls = name, per_word, 0

    def answer_logprobs(self, items: Any) -> list[tuple[float, int]]:
        self.calls += 1
        return [(-self.per_word * len(answer.split()), len(answer.split())) for _, answer in items]


class ForwardRegistry(ScoringRegistry):
    """The scoring doubles, with forward-pass scorers for the endpoints in ``forward``."""

    def __init__(self, forward: dict[str, float]) -> None:
        super().__init__()
        self.forward = {name: ForwardDouble(name, cost) for name, cost in forward.items()}

    def forward_scorer(self, endpoint: str) -> ForwardDouble | None:
        return self.forward.get(endpoint.lower())


@pytest.mark.parametrize(("forward", "likelihood_by", "scored_by", "margins"), [
    # both models have weights here: both scored in a forward pass (tuned -0.8 x (3 - 2) words, base -0.9)
    ({"tiny-chat": 0.9, "other-chat": 0.8}, "auto", "forward", (-0.9, -0.8)),
    # the base only: its forward scores are set aside and both are scored on the engine (-1 a word), one way
    ({"tiny-chat": 0.9}, "auto", "engine", (-1.0, -1.0)),
    # asked for the engine: the engine, weights or not
    ({"tiny-chat": 0.9, "other-chat": 0.8}, "engine", "engine", (-1.0, -1.0))])
def test_the_likelihood_line_scores_both_models_one_way(tmp_path: Path, forward: dict[str, float],
                                                       likelihood_by: str, scored_by: str,
                                                       margins: tuple[float, float]) -> None:
    registry = ForwardRegistry(forward)
    with served_platform(tmp_path / "data", registry=registry) as served:
        result = compare_preference("Other-Chat", "Tiny-Chat", pairs(3), likelihood_by=likelihood_by,
                                    config=served.config())
    assert result.likelihood_by == scored_by and result.to_dict()["likelihood"]["scored_by"] == scored_by
    assert [(p.base_margin, p.tuned_margin) for p in result.pairs] == [pytest.approx(margins)] * 3
    assert result.likelihood is not None and result.likelihood.wins == (3 if margins[1] > margins[0] else 0)
    if likelihood_by == "engine":
        assert all(d.calls == 0 for d in registry.forward.values())
    with pytest.raises(Exception, match="likelihood_by: must be 'auto', 'forward' or 'engine'"):
        compare_preference("Other-Chat", "Tiny-Chat", pairs(1), likelihood_by="fast")


def test_pairs_load_from_any_dpo_format_and_a_bad_one_is_named(tmp_path: Path) -> None:
    loaded = load_pairs([{"prompt": "p", "chosen": "c", "rejected": "r"}, *pairs(1)])
    assert [(p.chosen, p.rejected) for p in loaded] == [("c", "r"), ("Hello, person 0!", "Go away.")]
    with pytest.raises(Exception, match=r"pairs\[0\]: looks like SFT \(prompt/response\) data"):
        load_pairs([{"prompt": "p", "response": "r"}])


def test_the_trainer_compares_its_best_checkpoint_and_the_dashboard_button_shows_it(
        scoring: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.dataset import Dataset
    from qfnb.notebook.training.dashboard import TrainingDashboard
    from qfnb.trainer import LLMFinetune, TrainConfig

    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    rows = [{"prompt": f"Greet person {i}", "response": f"Hello, person {i}!"} for i in range(10)]
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(rows),
                          train_config=TrainConfig(epoch=1, batch_size=2, trainset_rate=20),
                          model_not_publish=True, config=scoring.config())
    trainer.run()
    result = trainer.compare(pairs(6, start=50))
    assert result.tuned.endswith("@best") and result.tuned.startswith("task-") and result.base == "Tiny-Chat"
    assert result.likelihood is not None and result.likelihood.win_rate == 1.0
    assert "Second line, by likelihood" in result.verdict and result.p_value <= 1.0
    with pytest.raises(Exception, match=r"pairs: .*looks like SFT"):  # its own split is SFT rows, not pairs
        trainer.compare()

    board = TrainingDashboard("dpo")
    board.trainer = trainer
    board.state.held_out, board.state.checkpoints = "held.jsonl", [{"step": 1}]
    board.finish("succeeded")
    assert board.comparable and board.compare_button.layout.display is None
    compare = trainer.compare  # the button compares on pairs of its own: the run's split is SFT rows
    monkeypatch.setattr(trainer, "compare", lambda: compare(pairs(6, start=70)))
    board._clicked_compare(None).join(60)
    assert board.comparison is not None and board.comparison.likelihood.win_rate == 1.0
    assert "Second line, by likelihood" in board.compare_view.value
    assert board.compare_button.description == "Compare again" and not board.compare_button.disabled
