"""The editor's request to the Jupyter server (``POST {base_url}qfnb/inline-completions``, its
``/stream`` and ``/warm``), typed and checked once: a field out of range is refused by name before anything runs.
Distinct from the daemon's ``/qfnb/complete`` body (:class:`qfnb.protocol.wires.local.completion.CompleteRequest`),
which the server builds from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qfnb.protocol.wires.local.completion import MAX_COMPLETION_TOKENS, MAX_CONTEXT_CHARS

__all__ = ["EDITOR_ROUTE", "EDITOR_STREAM_ROUTE", "EDITOR_WARM_ROUTE", "EditorAsk", "field_error"]

#: the Jupyter server extension's routes below the server's base URL
EDITOR_ROUTE = "qfnb/inline-completions"
EDITOR_WARM_ROUTE = "qfnb/inline-completions/warm"
EDITOR_STREAM_ROUTE = "qfnb/inline-completions/stream"
#: the languages the scope helper and the coder's context are written for
CODE_LANGUAGES = ("python", "ipython", "ipython3")


class EditorAsk(BaseModel):
    """One ask of the editor: the text around the cursor (``prefix``, ``suffix``), the notebook's
    earlier code ``cells``, the highest ``executionCount``, the ``kernel`` id, the notebook's ``path``,
    the cell's type and ``language`` (the kernel's), the ``model`` setting, a lower daily cap
    (``dailyTokens``; the server's is the most), the longest suggestion (``maxTokens``) and the editor's
    ``timeout`` (ms; the suggestion's deadline is below it)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field("", max_length=MAX_CONTEXT_CHARS)
    suffix: str = Field("", max_length=MAX_CONTEXT_CHARS)
    cells: list[str] = Field(default_factory=list, max_length=200)
    executionCount: int = Field(0, ge=0)
    kernel: str = Field("", max_length=100)
    path: str = Field("", max_length=1000)
    cellType: Literal["code", "markdown", "raw"] = "code"
    language: str = Field("python", max_length=50)
    model: str = Field("", max_length=200)
    dailyTokens: int | None = Field(None, ge=0)
    maxTokens: int = Field(64, ge=1, le=MAX_COMPLETION_TOKENS)
    timeout: int = Field(20_000, ge=100, le=600_000)

    @property
    def is_code(self) -> bool:
        """Whether the cell is code in a language completions are written for."""
        return self.cellType == "code" and self.language.lower() in CODE_LANGUAGES


def field_error(error: ValidationError) -> str:
    """The first problem of ``error``, naming its field."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"[:300]
