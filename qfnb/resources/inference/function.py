"""``Function``: chat with function calling, on ``ERNIE-Functions-8K`` by default (see
:mod:`.shapes.function_call` for how that model is driven)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from qfnb._core.http.response import QfResponse

from .chat import ChatCompletion, ChatMessages
from .shapes.function_call import FUNCTION_MODEL

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.protocol.wires.qianfan.answers import ChatAnswer, ChatChunk

__all__ = ["Function"]


class Function(ChatCompletion):
    """``Function().do(messages=msgs, functions=[...])``: a :class:`ChatCompletion` on
    ``ERNIE-Functions-8K`` (on the embedded platform: its default chat model) whose answer's
    ``function_call`` names the function to call and its JSON arguments."""

    def _default_model(self) -> str | None:
        return super()._default_model() if self.config.embedded else FUNCTION_MODEL

    async def ado(self, messages: ChatMessages, functions: list[dict[str, Any]] | None = None,  # type: ignore[override]
                  **kwargs: Any) -> QfResponse[ChatAnswer] | AsyncIterator[QfResponse[ChatChunk]]:
        """Chat with ``functions`` offered to the model (other arguments as :meth:`ChatCompletion.ado`)."""
        if functions:
            kwargs["functions"] = functions
        # ``**kwargs`` may hold ``stream``: the overloads cannot tell which answer comes back
        answer: QfResponse[ChatAnswer] | AsyncIterator[QfResponse[ChatChunk]] = await super().ado(messages, **kwargs)
        return answer

    def do(self, messages: ChatMessages, functions: list[dict[str, Any]] | None = None,  # type: ignore[override]
           **kwargs: Any) -> QfResponse[ChatAnswer] | Iterator[QfResponse[ChatChunk]]:
        """Blocking :meth:`ado` (a stream is a plain iterator)."""
        return self._blocking(self.ado(messages, functions, **kwargs))
