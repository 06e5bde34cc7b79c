"""Text helpers shared by the metric evaluators: normalisation, CJK detection, tokenisation.

CJK text is segmented with jieba (imported lazily, the first time Chinese text is seen);
other text is tokenised by the metric library's own tokenizer, so English scores equal the
library's published behaviour.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_CJK = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002ffff]"
)
_SPACE = re.compile(r"\s+")


def has_cjk(text: str) -> bool:
    """Whether ``text`` contains any Chinese/Japanese/Korean character."""
    return bool(_CJK.search(text))


def _is_punct_or_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def normalize(text: Any) -> str:
    """Normalise for exact-match comparison: NFKC, case-fold, drop punctuation, squeeze spaces."""
    s = unicodedata.normalize("NFKC", as_text(text)).casefold()
    s = "".join(" " if _is_punct_or_symbol(ch) else ch for ch in s)
    return _SPACE.sub(" ", s).strip()


def as_text(value: Any) -> str:
    """A dataset cell as text: ``None`` → ``""``; Qianfan ``[["answer"]]`` → ``"answer"``."""
    while isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(as_text(v) for v in value)
    return str(value)


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def cjk_tokens(text: str) -> list[str]:
    """jieba words of ``text``, without whitespace and punctuation-only tokens."""
    words = _jieba().lcut(unicodedata.normalize("NFKC", text))
    return [w for w in (w.strip() for w in words) if w and not all(_is_punct_or_symbol(c) for c in w)]


def join_tokens(tokens: Sequence[str]) -> str:
    return " ".join(tokens)
