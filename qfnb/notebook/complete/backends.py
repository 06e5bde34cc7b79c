"""Who writes a suggestion: the local platform's coder model (``POST /qfnb/complete`` on the data
dir's daemon, filled in the middle by llama-server), or a cloud model on a 2026 account (the v2
API key; the fill-in-the-middle task is put in the prompt). Both run in the Jupyter server's
process: the daemon's keys and the cloud key stay there, never in the browser.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

from qfnb._core.backend.daemon import ensure_daemon
from qfnb._core.config import Config
from qfnb._core.http.auth import iam_headers
from qfnb._core.record.ledger import UsageRow, default_ledger, job
from qfnb.notebook.complete.context import FimRequest
from qfnb.notebook.complete.spending import WITHDRAWN_JOB
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL
from qfnb.protocol.wires.codec.sse import SSEDecoder
from qfnb.protocol.wires.local.completion import COMPLETE_ROUTE, COMPLETION_KIND

__all__ = ["CLOUD_PREFIX", "Suggestion", "cloud", "local", "local_stream", "record_local", "record_shown",
           "record_withdrawn"]

log = logging.getLogger("qfnb.notebook.complete")

#: a model setting naming a cloud model: ``cloud:<model id>`` (e.g. ``cloud:ernie-4.5-turbo-128k``)
CLOUD_PREFIX = "cloud:"
#: seconds a suggestion may take at most (the editor's timeout sets a shorter deadline: :mod:`.handler`)
TIMEOUT = 60.0

_CLOUD_SYSTEM = ("You complete code in a Jupyter notebook. Reply with only the text to insert at <CURSOR>: "
                 "no explanation, no Markdown fence, nothing that is already before or after the cursor.")


@dataclass(frozen=True)
class Suggestion:
    """A model's text for the cursor, who wrote it and what it cost."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


async def local_stream(completion: FimRequest, model: str | None, document: str | None
                       ) -> AsyncGenerator[str | Suggestion, None]:
    """``completion`` answered by the data dir's daemon (started if none runs), streamed: its pieces as
    the engine writes them, then the whole :class:`Suggestion`. Closing the stream early closes the
    daemon's connection, and the daemon withdraws the generation at the engine."""
    platform = await asyncio.to_thread(ensure_daemon)
    url = platform.base_url.rstrip("/") + COMPLETE_ROUTE
    headers = iam_headers("POST", url, None, {"Content-Type": "application/json"},
                          platform.access_key, platform.iam_secret_key)
    started = time.monotonic()
    body = json.dumps({**completion.body(model, document), "stream": True})
    async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as client, \
            client.stream("POST", url, content=body, headers=headers) as reply:
        if reply.status_code != 200:
            await reply.aread()
            raise RuntimeError(_error_text(reply))
        decoder = SSEDecoder()
        async for text in reply.aiter_text():
            for item in decoder.feed(text):
                data = item.data
                if not isinstance(data, dict):
                    continue
                if "usage" not in data:
                    yield str(data.get("delta") or "")
                    continue
                usage = data.get("usage") or {}
                yield Suggestion(str(data.get("text") or ""), str(data.get("model") or ""),
                                 int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                                 time.monotonic() - started)
                return
    raise RuntimeError("the daemon's completion stream ended before its last event")


async def local(completion: FimRequest, model: str | None, document: str | None) -> Suggestion:
    """``completion`` answered by the data dir's daemon, whole (:func:`local_stream` collected)."""
    async for piece in local_stream(completion, model, document):
        if isinstance(piece, Suggestion):
            return piece
    raise RuntimeError("the daemon's completion stream ended before its last event")


def record_local(found: Suggestion, session: str | None) -> None:
    """A local completion's row in the ledger (kind ``inline-completion``, under the notebook's
    kernel session when known). A cloud completion is recorded by the client's record stage."""
    default_ledger().record(UsageRow(
        api=COMPLETION_KIND, model=found.model, platform="local", prompt_tokens=found.prompt_tokens,
        completion_tokens=found.completion_tokens, total_tokens=found.prompt_tokens + found.completion_tokens,
        latency_s=found.seconds, session=session or "", job=COMPLETION_KIND))


def record_shown(completion: FimRequest, model: str, session: str | None, seconds: float, *, generated: int) -> None:
    """A streamed suggestion cut at its deadline after its first text showed: what showed is the
    suggestion, in the ledger as a completion (shown, billed) with the ``generated`` pieces."""
    _record_unanswered(completion, model, session, seconds, generated, COMPLETION_KIND)


def record_withdrawn(completion: FimRequest, model: str, session: str | None, seconds: float, *, late: bool,
                     generated: int = 0) -> None:
    """A suggestion withdrawn before it showed (``late``: past its deadline; else the editor moved on),
    in the ledger under :data:`WITHDRAWN_JOB` with the ``generated`` pieces that came: spent, never
    billed as shown."""
    _record_unanswered(completion, model, session, seconds, generated, WITHDRAWN_JOB)
    log.info("qfnb completion withdrawn (%s) after %.1f s", "late" if late else "the editor moved on", seconds)


def _record_unanswered(completion: FimRequest, model: str, session: str | None, seconds: float, generated: int,
                       job_name: str) -> None:
    """The row of a call whose last event never came: its prompt's tokens are their upper bound (the
    engine read them, and nothing came back to count them)."""
    prompt = completion.context_tokens() - completion.max_tokens
    cloud = model.startswith(CLOUD_PREFIX)
    default_ledger().record(UsageRow(
        api=COMPLETION_KIND, model=model.removeprefix(CLOUD_PREFIX) or LOCAL_CHAT_MODEL,  # the daemon's default
        platform="cloud" if cloud else "local", prompt_tokens=prompt, completion_tokens=generated,
        total_tokens=prompt + generated, latency_s=seconds, session=session or "", job=job_name))


async def cloud(completion: FimRequest, model: str, config: Config | None = None) -> Suggestion:
    """``completion`` answered by the cloud model ``model`` through the v2 API (the account's key
    from the server's environment, or ``config``), recorded in the ledger under the job
    ``inline-completion``."""
    # deferred: loads the SDK's call surface (the server extension's import does not)
    from qfnb.resources.inference.chat import ChatCompletion

    context = "\n\n".join(f"# file: {name}\n{text}" for name, text in completion.extra)
    prompt = f"{context}\n\n# the cell being written:\n{completion.prefix}<CURSOR>{completion.suffix}"
    started = time.monotonic()
    with job(COMPLETION_KIND):
        resp = await ChatCompletion(version=2, config=config).ado(
            model=model, messages=[{"role": "system", "content": _CLOUD_SYSTEM}, {"role": "user", "content": prompt}],
            max_tokens=completion.max_tokens, temperature=0.01, stop=list(completion.stop))
    body = resp.body
    choice = (body.get("choices") or [{}])[0]
    text = str((choice.get("message") or {}).get("content") or "")
    usage = body.get("usage") or {}
    return Suggestion(_unfenced(text), str(body.get("model") or model), int(usage.get("prompt_tokens") or 0),
                      int(usage.get("completion_tokens") or 0), time.monotonic() - started)


def _unfenced(text: str) -> str:
    """A chat model's answer without the Markdown fence it may put around code."""
    stripped = text.strip("\n")
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped


def _error_text(reply: httpx.Response) -> str:
    try:
        err = reply.json().get("error") or {}
        return str(err.get("message") or err)
    except ValueError:
        return f"HTTP {reply.status_code}"
