"""Retrieval metrics (hit@k, MRR, nDCG), language detection by script, and ``similarity`` naming its
embedder and warning when texts are in a language it does not cover."""

from __future__ import annotations

import math
from typing import Any

import pytest

from qfnb.evaluation.evaluators._languages import language_of, uncovered
from qfnb.evaluation.evaluators.retrieval import hit_at, ndcg_at, reciprocal_rank, retrieval_scores
from qfnb.evaluation.evaluators.similarity import EmbeddingSimilarityEvaluator, SimilarityLanguageWarning


def test_hit_mrr_and_ndcg_by_hand() -> None:
    ranked = ["d3", "d1", "d7", "d2"]
    assert hit_at(ranked, {"d1"}, 1) == 0.0 and hit_at(ranked, {"d1"}, 2) == 1.0
    assert reciprocal_rank(ranked, {"d7"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, {"d2"}, k=3) == 0.0  # beyond the cut-off
    assert ndcg_at(ranked, {"d1"}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at(ranked, {"d3", "d1"}) == pytest.approx(1.0)
    assert retrieval_scores(ranked, {"d1"}, ks=(1, 3)) == pytest.approx(
        {"hit@1": 0.0, "hit@3": 1.0, "mrr@10": 0.5, "ndcg@10": 1 / math.log2(3)})


@pytest.mark.parametrize(("args", "match"), [((["a"], set(), 1), "relevant is empty"),
                                             ((["a"], {"a"}, 0), "k must be a positive integer"),
                                             (("abc", {"a"}, 1), "not one string")])
def test_bad_retrieval_input_is_named(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        hit_at(*args)


@pytest.mark.parametrize(("text", "lang"), [("退款多久到账？", "zh"), ("パスワードを忘れた", "ja"), ("비밀번호", "ko"),
                                            ("Reset my password", "latin"), ("Сбросить пароль", "ru"),
                                            ("पासवर्ड", "hi"), ("2024-01-01", None)])
def test_language_of_reads_the_script(text: str, lang: str | None) -> None:
    assert language_of(text) == lang


def test_uncovered_counts_texts_per_language() -> None:
    texts = ["你好", "hello", "안녕", "世界"]
    assert uncovered(texts, ("en",)) == {"zh": 2, "ko": 1}
    assert not uncovered(texts, ("en", "zh", "ko"))
    assert uncovered(["bonjour"], ("zh",)) == {"latin": 1}


class _Answer(dict[str, Any]):
    def __init__(self, vectors: list[list[float]], model: str) -> None:
        super().__init__(data=[{"embedding": v} for v in vectors])
        self.provenance = {"model": model}


class _Embedder:
    def __init__(self, model: str) -> None:
        self.model, self.calls = model, 0

    async def ado(self, texts: list[str]) -> _Answer:
        self.calls += 1
        return _Answer([[1.0, float(len(t))] for t in texts], self.model)


def test_similarity_names_its_embedder_and_warns_on_an_uncovered_language() -> None:
    ev = EmbeddingSimilarityEvaluator(_Embedder("all-MiniLM-L6-v2"))
    with pytest.warns(SimilarityLanguageWarning, match=r"all-MiniLM-L6-v2 covers en only, and 2 in zh of 2 texts "
                                                      r"are not.*model='USE-Multilingual-v3'"):
        ev.evaluate({}, "退款多久到账", "五个工作日")
    assert ev.embedder == "all-MiniLM-L6-v2" and "all-MiniLM-L6-v2" in repr(ev)
    import pandas as pd

    frame = pd.DataFrame({"input": ["q"], "reference": ["r"], "output": ["o"], "similarity": [0.5]})
    assert ev.summarize(frame) == {"similarity": 0.5, "similarity_embedder": "all-MiniLM-L6-v2"}


def test_similarity_is_silent_when_the_embedder_covers_the_language(recwarn: pytest.WarningsRecorder) -> None:
    ev = EmbeddingSimilarityEvaluator(_Embedder("USE-Multilingual-v3"))
    ev.evaluate({}, "退款多久到账", "refunds take five days")
    assert not [w for w in recwarn if issubclass(w.category, SimilarityLanguageWarning)]
    assert ev.embedder == "USE-Multilingual-v3"


def test_the_retrieval_metric_set_reads_rankings_and_relevant_ids() -> None:
    from qfnb.evaluation import RetrievalEvaluator

    ev = RetrievalEvaluator()
    assert ev.evaluate({}, "Z01", '["E03", "Z01", "Z02"]') == pytest.approx(
        {"hit@1": 0.0, "hit@3": 1.0, "hit@5": 1.0, "mrr@10": 0.5, "ndcg@10": 1 / math.log2(3)})
    assert ev.evaluate({}, "Z02; Z01", "Z01, Z02")["ndcg@10"] == pytest.approx(1.0)  # two relevant, both on top
    assert ev.evaluate({}, ["Z09"], ["Z01"])["mrr@10"] == 0.0
    assert ev.evaluate({}, "", "Z01") == dict.fromkeys(RetrievalEvaluator.metric_names)  # no relevant ids: empty
    assert ev.evaluate({}, "Z01", "['Z01', 'Z02']")["hit@1"] == 1.0  # a Python list as text
    with pytest.raises(ValueError, match="starts with '\\[' but is not a list"):
        ev.evaluate({}, "Z01", "[Z01")


def test_qfeval_knows_the_retrieval_metrics() -> None:
    from qfnb.evaluation import RetrievalEvaluator
    from qfnb.notebook.evaluation.metric_words import METRICS, make_evaluators

    assert METRICS["retrieval"][1] == RetrievalEvaluator.metric_names
    evaluators = make_evaluators(["mrr", "hit@3", "rouge_l"], None)
    assert [type(e).__name__ for e in evaluators] == ["RetrievalEvaluator", "RougeEvaluator"]
