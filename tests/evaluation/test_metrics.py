"""Metric correctness: exact match, BLEU-4 and ROUGE against the libraries, similarity."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import sacrebleu

from qfnb.evaluation import BleuEvaluator, EmbeddingSimilarityEvaluator, ExactMatchEvaluator, RougeEvaluator
from qfnb.evaluation.base import Sample
from qfnb.evaluation.evaluators.similarity import cosine
from qfnb.protocol.console.textmetrics import cjk_tokens, has_cjk, normalize


@pytest.mark.parametrize(("ref", "out", "expected"), [
    ("Paris", "paris.", 1.0),
    ("  The   Answer!", "the answer", 1.0),
    ("北京", "北京。", 1.0),
    ("ＡＢＣ", "abc", 1.0),  # full-width folds to ASCII
    ("42", "42 apples", 0.0),
    ("北京", "上海", 0.0),
])
def test_exact_match_normalised(ref: str, out: str, expected: float) -> None:
    assert ExactMatchEvaluator().evaluate("q", ref, out) == {"accuracy": expected}


def test_exact_match_strict_mode_keeps_case_and_punctuation() -> None:
    ev = ExactMatchEvaluator(normalized=False)
    assert ev.evaluate("q", "Paris", " Paris ") == {"accuracy": 1.0}
    assert ev.evaluate("q", "Paris", "paris") == {"accuracy": 0.0}


def test_normalize_and_cjk_detection() -> None:
    assert normalize("Hello,  World!!") == "hello world"
    assert has_cjk("abc 中文") and not has_cjk("plain english")
    assert cjk_tokens("我爱北京天安门。") == ["我", "爱", "北京", "天安门"]


EN_REF = "the quick brown fox jumps over the lazy dog"
EN_OUT = "the quick brown fox jumped over the lazy dog"


def test_bleu_english_equals_sacrebleu_sentence_bleu() -> None:
    got = BleuEvaluator().evaluate("q", EN_REF, EN_OUT)["bleu4"]
    want = sacrebleu.sentence_bleu(EN_OUT, [EN_REF]).score / 100
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.0 < got < 1.0


def test_bleu_identical_is_one_and_empty_is_zero() -> None:
    ev = BleuEvaluator()
    assert ev.evaluate("q", EN_REF, EN_REF)["bleu4"] == pytest.approx(1.0)
    assert ev.evaluate("q", EN_REF, "")["bleu4"] == 0.0


def test_bleu_chinese_uses_jieba_segmentation() -> None:
    ref, out = "今天北京的天气很好，适合出去散步。", "今天北京天气很好，适合散步。"
    got = BleuEvaluator().evaluate("q", ref, out)["bleu4"]
    # the same sentence BLEU computed by sacrebleu on jieba-segmented text
    seg = lambda t: " ".join(cjk_tokens(t))  # noqa: E731
    want = sacrebleu.BLEU(tokenize="none", effective_order=True).sentence_score(seg(out), [seg(ref)]).score / 100
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.0 < got < 1.0
    # without segmentation the whole sentence would be one token and BLEU would be 0
    assert sacrebleu.sentence_bleu(out, [ref], tokenize="none").score == 0.0


def test_bleu_summary_is_corpus_bleu() -> None:
    refs = [EN_REF, "a cat sat on the mat"]
    outs = [EN_OUT, "the cat sat on the mat"]
    frame = pd.DataFrame({"input": ["q1", "q2"], "reference": refs, "output": outs})
    got = BleuEvaluator().summarize(frame)
    assert got == {"bleu4": pytest.approx(sacrebleu.corpus_bleu(outs, [refs]).score / 100, abs=1e-12)}


def test_rouge_english_equals_rouge_score() -> None:
    from rouge_score.rouge_scorer import RougeScorer  # imports nltk (2 s): in the test, not at collection

    got = RougeEvaluator().evaluate("q", EN_REF, EN_OUT)
    want = RougeScorer(["rouge1", "rouge2", "rougeL"]).score(EN_REF, EN_OUT)
    assert got == {
        "rouge_1": pytest.approx(want["rouge1"].fmeasure),
        "rouge_2": pytest.approx(want["rouge2"].fmeasure),
        "rouge_l": pytest.approx(want["rougeL"].fmeasure),
    }
    assert got["rouge_1"] == pytest.approx(8 / 9)  # 8 of 9 unigrams shared


def test_rouge_chinese_counts_jieba_words() -> None:
    from rouge_score.rouge_scorer import RougeScorer

    ref, out = "我爱北京天安门", "我爱北京"  # jieba: 我/爱/北京/天安门 vs 我/爱/北京
    got = RougeEvaluator().evaluate("q", ref, out)
    p1, r1 = 3 / 3, 3 / 4
    assert got["rouge_1"] == pytest.approx(2 * p1 * r1 / (p1 + r1))
    p2, r2 = 2 / 2, 2 / 3
    assert got["rouge_2"] == pytest.approx(2 * p2 * r2 / (p2 + r2))
    assert got["rouge_l"] == pytest.approx(got["rouge_1"])
    # rouge-score's own tokenizer drops CJK characters entirely
    assert RougeScorer(["rouge1"]).score(ref, out)["rouge1"].fmeasure == 0.0


class StubEmbedder:
    """Deterministic bag-of-characters vectors; records each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [[float(t.count(c)) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]


async def test_similarity_is_cosine_of_embeddings_and_batches() -> None:
    stub = StubEmbedder()
    ev = EmbeddingSimilarityEvaluator(stub, batch_size=2)
    samples = [Sample(0, "m", "q", "abc", "abc"), Sample(1, "m", "q", "aab", "abb"),
               Sample(2, "m", "q", "abc", ""), Sample(3, "m", "q", "", "abc")]
    got = await ev.aevaluate_many(samples)
    assert got[0]["similarity"] == pytest.approx(1.0)
    assert got[1]["similarity"] == pytest.approx(cosine([2, 1], [1, 2]))  # 0.8
    assert got[1]["similarity"] == pytest.approx(0.8)
    assert got[2]["similarity"] == 0.0 and got[3]["similarity"] is None
    # distinct non-empty texts only (abc, aab, abb), two per request
    assert [len(c) for c in stub.calls] == [2, 1]
    assert sorted(t for c in stub.calls for t in c) == ["aab", "abb", "abc"]


async def test_similarity_with_embedding_like_resource() -> None:
    class FakeEmbedding:
        async def ado(self, texts: list[str]) -> dict:
            return {"data": [{"embedding": [1.0, float(len(t))]} for t in texts]}

    ev = EmbeddingSimilarityEvaluator(FakeEmbedding())
    got = await ev.aevaluate("q", "ab", "abcd")
    assert got["similarity"] == pytest.approx((1 + 8) / (math.sqrt(5) * math.sqrt(17)))


def test_cosine_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="length"):
        cosine([1.0], [1.0, 2.0])


MIXED = [  # (reference, output): mixed Chinese/latin text, punctuation and full-width forms
    ("北京是中国的首都 Beijing is the capital", "北京是中国的首都，Beijing is the capital!"),
    ("The answer is 42。", "the answer is 42"),
    ("机器学习 machine learning 很有趣", "深度学习 deep learning 很有趣"),
    ("Paris", "巴黎 Paris"),
    ("ＡＢＣ 全角字符", "abc 全角字符"),
    ("", "空的参考"),
]


def test_the_local_platform_scores_exactly_like_the_sdk_evaluators() -> None:
    from typing import Any, cast

    from qfnb.local.domain.console.evaluation import score

    refs, outs = [r for r, _ in MIXED], [o for _, o in MIXED]
    frame = pd.DataFrame({"input": ["q"] * len(MIXED), "reference": refs, "output": outs})
    sdk: dict[str, float] = {}
    for ev in (ExactMatchEvaluator(), BleuEvaluator(), RougeEvaluator()):
        rows = pd.DataFrame([ev.evaluate("q", r, o) for r, o in MIXED])
        sdk.update(ev.summarize(pd.concat([frame, rows], axis=1)) or {})
    local = score(cast(Any, None), outs, refs, ["accuracy"])
    assert set(local) == {"accuracy", "bleu4", "rouge_l"}
    assert local == {k: pytest.approx(sdk[k], rel=1e-12, abs=1e-15) for k in local}
    assert 0 < local["accuracy"] < 1 and 0 < local["bleu4"] < 1 and 0 < local["rouge_l"] < 1
