"""One evaluation on the embedded local platform with real models (Qwen2.5 chat via llama.cpp,
all-MiniLM-L6-v2 embeddings): inference, text metrics, similarity and an LLM judge."""

from __future__ import annotations

import pytest

from qfnb.evaluation import (
    BleuEvaluator,
    EmbeddingSimilarityEvaluator,
    EvaluationManager,
    ExactMatchEvaluator,
    LocalJudgeEvaluator,
    RougeEvaluator,
)

pytestmark = pytest.mark.real_model

DATA = [
    {"prompt": "What is the capital of France? Answer with one word only.", "response": [["Paris"]]},
    {"prompt": "中国的首都是哪座城市？只回答城市名。", "response": [["北京"]]},
    {"prompt": "What is 2 + 3? Answer with the number only.", "response": [["5"]]},
]


@pytest.mark.slow
def test_evaluate_a_real_model_on_the_local_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    from qfnb.resources import ChatCompletion

    chat = ChatCompletion()  # the local platform's default chat model
    # a judge is never a candidate (it would favour its own answers): the other local model judges
    judge = LocalJudgeEvaluator(ChatCompletion(model="Gemma-3-270M"),
                                judge_kwargs={"temperature": 0.01, "max_output_tokens": 48})
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator(), BleuEvaluator(), RougeEvaluator(),
                                             EmbeddingSimilarityEvaluator(), judge])
    result = em.eval({"qwen": chat}, DATA, temperature=0.01, max_output_tokens=24)
    samples = result.samples
    assert samples["error"].isna().all(), samples["error"].tolist()
    assert all(isinstance(o, str) and o.strip() for o in samples["output"])
    m = result.metrics["qwen"]
    assert set(m) >= {"accuracy", "bleu4", "rouge_1", "rouge_l", "similarity", "judge_score"}
    # the model knows these: at least one exact answer, and answers close in embedding space
    assert m["accuracy"] >= 1 / 3
    assert m["similarity"] > 0.4
    for out, sim in zip(samples["output"], samples["similarity"], strict=True):
        if "paris" in out.lower():
            assert sim > 0.5
    assert all(isinstance(j, str) and j for j in samples["judge_score_judgement"])
    assert list(result.metrics_df.index) == ["qwen"]


def test_similarity_with_minilm_on_the_local_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QIANFAN_AK", "QIANFAN_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    em = EvaluationManager(local_evaluators=[EmbeddingSimilarityEvaluator()])  # qfnb.Embedding(): MiniLM
    rows = [{"prompt": "q", "response": "A cat is sitting on the mat.", "output": "The cat sits on the mat."},
            {"prompt": "q", "response": "A cat is sitting on the mat.", "output": "Stock markets fell sharply."}]
    sims = em.eval_only(rows).samples["similarity"].tolist()
    assert sims[0] > 0.7 and sims[1] < 0.3 and sims[0] > sims[1]
