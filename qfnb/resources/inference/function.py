"""``Function``: chat with function calling, on the function-calling model by default."""

from __future__ import annotations

from typing import Any

from .chat import ChatCompletion, ChatMessages

__all__ = ["Function"]

#: the official SDK's default model for :class:`Function`
FUNCTION_MODEL = "ERNIE-Functions-8K"


class Function(ChatCompletion):
    """``Function().do(messages=msgs, functions=[...])``: a :class:`ChatCompletion` whose default
    model is ``ERNIE-Functions-8K`` (on the embedded platform: its default chat model); the
    answer's ``function_call`` names the function to call."""

    def _default_model(self) -> str | None:
        return super()._default_model() if self.config.embedded else FUNCTION_MODEL

    def do(self, messages: ChatMessages, functions: list[dict[str, Any]] | None = None,  # type: ignore[override]
           **kwargs: Any) -> Any:
        """Chat with ``functions`` offered to the model (the other arguments as
        :meth:`ChatCompletion.do`)."""
        if functions:
            kwargs["functions"] = functions
        return super().do(messages, **kwargs)

    async def ado(self, messages: ChatMessages, functions: list[dict[str, Any]] | None = None,  # type: ignore[override]
                  **kwargs: Any) -> Any:
        """Async :meth:`do`."""
        if functions:
            kwargs["functions"] = functions
        return await super().ado(messages, **kwargs)
