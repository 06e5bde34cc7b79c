"""``Tokenizer.count_tokens``: a local estimate, or the platform's count (``mode="remote"``)."""

from __future__ import annotations

import re
from typing import Any

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.runtime import sync

__all__ = ["Tokenizer"]

_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")
_WORD = re.compile(r"[^\W_]+")  # punctuation and spaces separate words
#: the platform's tokenizer route (``/tokenizer/erniebot``): counts for the ERNIE models
_REMOTE_ENDPOINT = "erniebot"


class Tokenizer:
    """``Tokenizer.count_tokens("你好 world")``: ``mode="local"`` (default) estimates as the
    official SDK does (CJK characters + 1.3 × the other words, punctuation separating words);
    ``mode="remote"`` asks the platform (ERNIE models only; the local platform has no
    tokenizer service and says so)."""

    @classmethod
    def count_tokens(cls, text: str, mode: str = "local", model: str = "ERNIE-Bot",
                     **kwargs: Any) -> int:
        if mode == "local":
            return cls._local_count(text)
        return sync.run(cls.acount_tokens(text, mode, model, **kwargs))

    @classmethod
    async def acount_tokens(cls, text: str, mode: str = "local", model: str = "ERNIE-Bot",
                            **kwargs: Any) -> int:
        if mode == "local":
            return cls._local_count(text)
        if mode != "remote":
            raise ValidationError("mode", f"must be 'local' or 'remote', got {mode!r}")
        if not isinstance(text, str) or not text:
            raise ValidationError("text", "must be a non-empty string for a remote count")
        from qfnb._core.http.client import get_client

        config: Config | None = kwargs.pop("config", None)
        cfg = resolve_config(config, **kwargs)
        resp = await get_client(cfg).infer("tokenizer", _REMOTE_ENDPOINT, {"prompt": text, "model": model})
        total = (resp.body.get("usage") or {}).get("total_tokens")
        if not isinstance(total, int):
            raise ValidationError("usage.total_tokens", "the platform's answer has no token count")
        return total

    @staticmethod
    def _local_count(text: str) -> int:
        if not isinstance(text, str):
            raise ValidationError("text", f"must be a string, got {type(text).__name__}")
        han = len(_HAN.findall(text))
        words = len(_WORD.findall(_HAN.sub(" ", text)))
        return han + int(words * 1.3)
