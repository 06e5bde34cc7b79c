"""``Messages``: a chat history that alternates user / assistant turns for you."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from qfnb._core.http.response import QfResponse

__all__ = ["Messages", "QfMessages", "QfRole", "Role"]


class QfRole(StrEnum):
    """Chat roles, spelled as the official SDK does (``QfRole.User``); upper-case aliases."""

    User = "user"
    Assistant = "assistant"
    Function = "function"
    USER = "user"
    ASSISTANT = "assistant"
    FUNCTION = "function"


class Messages:
    """A list of ``{"role", "content"}`` dicts.

    ``append(text)`` adds a user turn after an assistant turn and vice versa;
    ``append(resp)`` with a :class:`QfResponse` adds the model's answer as the assistant
    turn (keeping a ``function_call`` if it has one). Pass a role to be explicit.
    """

    def __init__(self, messages: list[dict[str, Any]] | None = None) -> None:
        self._items: list[dict[str, Any]] = []
        for m in messages or []:
            self.append(m.get("content", ""), role=m.get("role"))

    def append(self, message: str | QfResponse | dict[str, Any], role: str | None = None) -> Messages:
        if isinstance(role, QfRole):
            role = role.value
        if isinstance(message, QfResponse):
            item: dict[str, Any] = {"role": role or QfRole.ASSISTANT.value, "content": message.result}
            call = message.body.get("function_call")
            if call:
                item["function_call"] = call
        elif isinstance(message, dict):
            item = dict(message)
            if role:
                item["role"] = role
            item.setdefault("role", self._next_role())
        elif isinstance(message, str):
            item = {"role": role or self._next_role(), "content": message}
        else:
            raise TypeError(f"Messages.append takes a str, a dict or a QfResponse, got {type(message).__name__}")
        self._items.append(item)
        return self

    def _next_role(self) -> str:
        if not self._items or self._items[-1]["role"] != QfRole.USER:
            return QfRole.USER.value
        return QfRole.ASSISTANT.value

    def to_list(self) -> list[dict[str, Any]]:
        return [dict(m) for m in self._items]

    _to_list = to_list  # the official SDK's spelling

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._items[index]

    def __repr__(self) -> str:
        return f"Messages({self._items!r})"


#: the official SDK's names for the same classes
QfMessages = Messages
Role = QfRole
