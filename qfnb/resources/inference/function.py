"""``Function``: chat with function calling, on ``ERNIE-Functions-8K`` by default (see
:mod:`.function_call` for how that model is driven)."""

from __future__ import annotations

from typing import Any

from .chat import ChatCompletion, ChatMessages
from .function_call import FUNCTION_MODEL

__all__ = ["Function"]


class Function(ChatCompletion):
    """``Function().do(messages=msgs, functions=[...])``: a :class:`ChatCompletion` on
    ``ERNIE-Functions-8K`` (on the embedded platform: its default chat model) whose answer's
    ``function_call`` names the function to call and its JSON arguments."""

    def _default_model(self) -> str | None:
        return super()._default_model() if self.config.embedded else FUNCTION_MODEL

    async def ado(self, messages: ChatMessages, functions: list[dict[str, Any]] | None = None,  # type: ignore[override]
                  **kwargs: Any) -> Any:
        """Chat with ``functions`` offered to the model (other arguments as :meth:`ChatCompletion.ado`)."""
        if functions:
            kwargs["functions"] = functions
        return await super().ado(messages, **kwargs)

    def do(self, messages: ChatMessages, functions: list[dict[str, Any]] | None = None,  # type: ignore[override]
           **kwargs: Any) -> Any:
        """Blocking :meth:`ado` (a stream is a plain iterator)."""
        return self._blocking(self.ado(messages, functions, **kwargs))
