"""Durable, incremental evaluation: an answer store, and scoring recorded answers without a model."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qfnb._core.config import Config
from qfnb.evaluation import AnswerStore, EvaluationManager, ExactMatchEvaluator, RougeEvaluator
from qfnb.evaluation.runs import answers as answers_mod
from qfnb.resources import ChatCompletion
from tests.fakes.cloud import FakeQianfan

DATA = [{"prompt": f"question {i}", "response": f"echo[completions]: question {i}"} for i in range(6)]


def _inference(fake: FakeQianfan) -> list[str]:
    """Prompts that reached the platform's inference routes, in order."""
    return [str(r.json["messages"][-1]["content"]) for r in fake.requests
            if "/wenxinworkshop/" in r.path and r.json and "messages" in r.json]


def test_rerun_with_one_more_model_calls_only_the_new_model(fake: FakeQianfan, tmp_path: Path,
                                                            make_config: Callable[..., Config]) -> None:
    cfg = make_config("oauth")
    store = tmp_path / "answers.sqlite"
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    first = em.eval({"base": ChatCompletion(model="ERNIE-Speed-8K", config=cfg)}, DATA, store=store)
    assert len(_inference(fake)) == 6
    fake.requests.clear()
    again = em.eval({"base": ChatCompletion(model="ERNIE-Speed-8K", config=cfg),
                     "lite": ChatCompletion(model="ERNIE-Lite-8K", config=cfg)}, DATA, store=store)
    sent = [r for r in fake.requests if "/wenxinworkshop/" in r.path and r.json and "messages" in r.json]
    assert len(sent) == 6 and all("ernie-lite-8k" in r.path for r in sent)  # exactly the new model's calls
    pd.testing.assert_series_equal(first.samples_df["base/output"], again.samples_df["base/output"])
    fake.requests.clear()
    # two more items: only they are asked, of each model
    more = [*DATA, {"prompt": "question 6", "response": "x"}, {"prompt": "question 7", "response": "y"}]
    em.eval({"base": ChatCompletion(model="ERNIE-Speed-8K", config=cfg),
             "lite": ChatCompletion(model="ERNIE-Lite-8K", config=cfg)}, more, store=store)
    assert sorted(_inference(fake)) == ["question 6", "question 6", "question 7", "question 7"]
    # other sampling settings are other answers
    fake.requests.clear()
    em.eval({"base": ChatCompletion(model="ERNIE-Speed-8K", config=cfg)}, DATA, store=store, temperature=0.7)
    assert len(_inference(fake)) == 6
    assert len(AnswerStore(store)) == 6 + 6 + 4 + 6
    assert store.stat().st_mode & 0o777 == 0o600


def test_failed_answers_are_asked_again_and_repeats_are_stored_apart(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    failed: list[str] = []

    def flaky(prompt: str) -> str:
        calls[prompt] += 1
        if prompt == "question 2" and not failed:
            failed.append(prompt)
            raise RuntimeError("rate limited")
        return f"echo[completions]: {prompt}"

    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    res = em.eval({"m": flaky}, DATA, store=tmp_path / "s.sqlite")
    assert res.samples["error"].notna().sum() == 1
    calls.clear()
    res = em.eval({"m": flaky}, DATA, store=tmp_path / "s.sqlite")
    assert calls == Counter({"question 2": 1})
    assert res.samples["error"].isna().all() and res.metrics["m"]["accuracy"] == 1.0
    calls.clear()
    em.eval({"m": flaky}, DATA, store=tmp_path / "s.sqlite", repeats=3)
    assert calls == Counter({d["prompt"]: 2 for d in DATA})  # repeat 0 is stored; 1 and 2 are new


def test_answers_are_written_as_they_come(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    original = AnswerStore.put_many

    def spy(self: AnswerStore, model: str, items: Any) -> None:
        writes.append(len(items))
        original(self, model, items)

    monkeypatch.setattr(AnswerStore, "put_many", spy)
    data = [{"prompt": f"q{i}", "response": "r"} for i in range(40)]
    EvaluationManager(local_evaluators=[ExactMatchEvaluator()]).eval({"m": str.upper}, data,
                                                                        store=tmp_path / "s.sqlite")
    assert writes == [answers_mod.CHUNK, answers_mod.CHUNK, 40 - 2 * answers_mod.CHUNK]
    writes.clear()  # one worker: each answer written as it comes (a kill loses only the one in flight)
    EvaluationManager(local_evaluators=[ExactMatchEvaluator()], worker_num=1).eval(
        {"m": str.lower}, data[:5], store=tmp_path / "s.sqlite")
    assert writes == [1] * 5


def test_recorded_answers_in_a_dataset_column_are_scored_without_a_model() -> None:
    rows = [{**d, "tuned_answer": d["response"] if i % 2 else "wrong", "base_answer": "wrong"}
            for i, d in enumerate(DATA)]
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator(), RougeEvaluator()])
    res = em.eval(dataset=rows, recorded={"tuned": "tuned_answer", "base": "base_answer"})
    assert res.metrics["tuned"]["accuracy"] == 0.5 and res.metrics["base"]["accuracy"] == 0.0
    assert res.samples_df["tuned/output"].tolist()[:2] == ["wrong", DATA[1]["response"]]
    assert res.compare("tuned", "base").row("tuned", "accuracy").wins == 3
    single = em.eval(dataset=rows, recorded="tuned_answer")
    assert single.llm_tags == ["tuned_answer"]


def test_recorded_batch_output_jsonl_matched_by_prompt(tmp_path: Path) -> None:
    out = tmp_path / "batch_output.jsonl"
    lines = [{"prompt": d["prompt"], "response": d["response"], "llm_output": d["response"] if i < 4 else "no"}
             for i, d in enumerate(DATA)][::-1]  # another order than the dataset's
    out.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    calls: list[str] = []

    def base(prompt: str) -> str:
        calls.append(prompt)
        return "no"

    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    res = em.eval({"base": base}, DATA, recorded={"tuned": out})
    assert len(calls) == 6  # the live model only
    assert res.samples_df["tuned/accuracy"].tolist() == [1, 1, 1, 1, 0, 0]
    assert res.compare("tuned", "base").row("tuned", "accuracy").wins == 4
    with pytest.raises(ValueError, match=r"recorded\['tuned'\].*6 recorded answers for 3 items"):
        em.eval(dataset=[{"prompt": "other", "response": "x"}] * 3, recorded={"tuned": out})
    with pytest.raises(ValueError, match="neither a dataset column"):
        em.eval(dataset=DATA, recorded={"tuned": "nope"})
    with pytest.raises(ValueError, match="also name models"):
        em.eval({"tuned": base}, DATA, recorded={"tuned": out})


def test_identity_names_the_model_and_its_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.evaluation.llm import as_target, target_identity

    def ident(llm: Any) -> str:
        return target_identity(as_target(llm))

    local = ChatCompletion(model="Gemma-3-270M", config=Config())
    cloud = ChatCompletion(model="Gemma-3-270M", config=Config(ak="a", sk="b", base_url="https://qianfan.example"))
    assert ident(local) == "model:Gemma-3-270M@embedded"
    assert ident(cloud) == "model:Gemma-3-270M@https://qianfan.example"
    assert ident(ChatCompletion(model="Gemma-3-270M", config=Config())) == ident(local)  # another object, same model
    assert ident(ChatCompletion(endpoint="ep_1", config=Config())) == "endpoint:ep_1@embedded"
    assert ident(str.upper).startswith("callable:")


def make_asker(style: str, asked: list[str]) -> Callable[[str], str]:
    """A factory: every asker it makes has the same qualified name, and answers differently."""
    def ask(prompt: str) -> str:
        asked.append(style)
        return f"{style}: {prompt}"
    return ask


class Asker:
    def __init__(self, style: str) -> None:
        self.style = style

    def __call__(self, prompt: str) -> str:
        return f"{self.style}: {prompt}"


def test_callables_are_stored_by_what_they_are_not_by_their_name(tmp_path: Path) -> None:
    """Two closures of one factory (or two instances of one class) share a qualified name; each keeps
    its own answers, and the same callable made again (a re-run cell) reuses them."""
    store = tmp_path / "answers.sqlite"
    asked: list[str] = []
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    res = em.eval({"terse": make_asker("terse", asked), "polite": make_asker("polite", asked)}, DATA, store=store)
    assert Counter(asked) == {"terse": 6, "polite": 6}
    assert res.samples_df["polite/output"].str.startswith("polite: ").all()  # not the terse asker's answers
    asked.clear()
    em.eval({"terse": make_asker("terse", asked)}, DATA, store=store)
    assert asked == []  # made again: the same code and closure, its stored answers
    objects = em.eval({"a": Asker("a"), "b": Asker("b")}, DATA, store=store)
    assert objects.samples_df["b/output"].str.startswith("b: ").all()

    def ident(llm: Any) -> str:
        from qfnb.evaluation.llm import as_target, target_identity

        return target_identity(as_target(llm))

    assert ident(Asker("a")) == ident(Asker("a")) != ident(Asker("b"))


def test_repeats_and_fresh_under_the_response_cache(fake: FakeQianfan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    make_config: Callable[..., Config]) -> None:
    """With the HTTP response cache on (a notebook turns it on), each repeat is still asked of the model,
    a re-run answers from the cache, and a fresh run asks again."""
    from qfnb._core.record import cache as cache_mod

    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "data"))
    cache_mod._default.clear()
    chat = ChatCompletion(model="ERNIE-Speed-8K", config=make_config("oauth", cache=True))
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    em.eval({"m": chat}, DATA, repeats=3, temperature=0.9)
    assert len(_inference(fake)) == 18  # 6 items x 3 repeats: no repeat answered from another's cache entry
    fake.requests.clear()
    em.eval({"m": chat}, DATA, repeats=3, temperature=0.9)
    assert _inference(fake) == []  # the same evaluation again: every answer from the response cache
    em.eval({"m": chat}, DATA, repeats=3, temperature=0.9, store=AnswerStore(tmp_path / "s.sqlite", refresh=True))
    assert len(_inference(fake)) == 18  # fresh: asked again, even with the cache on
    cache_mod._default.clear()


def test_the_store_keeps_a_label_queues_state_and_a_fresh_run_does_not_forget_it(tmp_path: Path) -> None:
    store = AnswerStore(tmp_path / "s.sqlite")
    assert store.label_state("label:x") is None
    store.save_label_state("label:x", {"labels": {"3": 1.0}, "draws": [[3, 0.1]]})
    again = AnswerStore(tmp_path / "s.sqlite", refresh=True)  # new answers asked; your labels kept
    assert again.label_state("label:x") == {"labels": {"3": 1.0}, "draws": [[3, 0.1]]}
    assert len(again) == 0  # labels are not answers
