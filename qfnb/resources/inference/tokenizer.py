"""``Tokenizer.count_tokens``: a local estimate, or the platform's count (``mode="remote"``)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from qfnb._core.config import Config, resolve_config
from qfnb._core.errors import ValidationError
from qfnb._core.http.client import get_client
from qfnb._core.runtime import sync
from qfnb.protocol.wires.qianfan.routes import Target

__all__ = ["Tokenizer"]

_HAN = re.compile(r"[\u4e00-\u9fff]")
#: the platform's tokenizer route (``/tokenizer/erniebot``): counts for the ERNIE models
_REMOTE_ENDPOINT = "erniebot"


class Tokenizer:
    """``Tokenizer.count_tokens("你好 world")``: ``mode="local"`` (default) estimates as the
    official SDK does (0.625 per CJK character + 1 per other word, ASCII or Unicode punctuation
    and spaces separating words, rounded down);
    ``mode="remote"`` asks the platform: ERNIE models on the cloud, the model's own tokenizer on the
    local platform (``model`` names a local chat model there)."""

    @classmethod
    def count_tokens(cls, text: str, mode: str = "local", model: str = "ERNIE-Bot",
                     **kwargs: Any) -> int:
        if mode == "local":
            return cls.estimate(text)
        return sync.run(cls.acount_tokens(text, mode, model, **kwargs))

    @classmethod
    async def acount_tokens(cls, text: str, mode: str = "local", model: str = "ERNIE-Bot",
                            **kwargs: Any) -> int:
        if mode == "local":
            return cls.estimate(text)
        if mode != "remote":
            raise ValidationError("mode", f"must be 'local' or 'remote', got {mode!r}")
        if not isinstance(text, str) or not text:
            raise ValidationError("text", "must be a non-empty string for a remote count")

        config: Config | None = kwargs.pop("config", None)
        cfg = resolve_config(config, **kwargs)
        resp = await get_client(cfg).infer(Target("tokenizer", _REMOTE_ENDPOINT), {"prompt": text, "model": model})
        total = (resp.body.get("usage") or {}).get("total_tokens")
        if not isinstance(total, int):
            raise ValidationError("usage.total_tokens", "the platform's answer has no token count")
        return total

    @classmethod
    async def acount_chat_tokens(cls, messages: list[dict[str, str]], model: str, *,
                                 config: Config | None = None) -> tuple[int, str]:
        """The prompt tokens a chat call of ``messages`` takes on ``model`` and the model that counted
        them. The local platform renders the turns with the model's template and counts with its
        tokenizer (``messages`` on ``/tokenizer/erniebot``, a qfnb field); the cloud platform's
        tokenizer counts the turns' text (ERNIE models)."""
        if not isinstance(messages, list) or not messages:
            raise ValidationError("messages", "must be a non-empty list of {role, content} turns")
        cfg = resolve_config(config)
        body: dict[str, Any] = ({"messages": messages, "model": model} if cfg.embedded else
                                {"prompt": "\n".join(str(m.get("content") or "") for m in messages), "model": model})
        resp = await get_client(cfg).infer(Target("tokenizer", _REMOTE_ENDPOINT), body)
        total = (resp.body.get("usage") or {}).get("total_tokens")
        if not isinstance(total, int):
            raise ValidationError("usage.total_tokens", "the platform's answer has no token count")
        return total, resp.served_model or model

    @staticmethod
    def estimate(text: str, han_tokens: float = 0.625, word_tokens: float = 1.0) -> int:
        """``mode="local"``'s estimate, with no call and no event loop (for async code too)."""
        if not isinstance(text, str):
            raise ValidationError("text", f"must be a string, got {type(text).__name__}")
        han = len(_HAN.findall(text))
        spaced = "".join(" " if _HAN.match(ch) or _separates(ch) else ch for ch in text)
        return int(han * han_tokens + len(spaced.split()) * word_tokens)


def _separates(ch: str) -> bool:
    """Spaces and punctuation (every ASCII symbol, and Unicode's P* categories)."""
    return ch.isspace() or unicodedata.category(ch).startswith(("P", "Zs")) or (
        ch.isascii() and not ch.isalnum() and ch.isprintable())
