"""``qfnb mcp``: the platform's abilities as an MCP server (the official ``mcp`` package's
``MCPServer``), so a desktop agent can use the models and the user's datasets and evaluations.

Tools: ``chat``, ``embeddings``, ``rerank``, ``dataset_info``, ``dataset_rows``,
``evaluation_info`` and ``evaluation_results``. Each is one call of qfnb's SDK, so it reaches
whatever qfnb is configured for: the local platform (started if none runs) or the cloud with the
user's keys. Transports: stdio (what a desktop agent starts) or streamable HTTP on a loopback
address (``--http``: :func:`http_app`, which ``qfnb mcp`` serves behind its key).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.applications import Starlette

from qfnb.resources import ChatCompletion, Data, Embedding, Model, QfResponse, Reranker

__all__ = ["build_server", "http_app", "serve"]

log = logging.getLogger("qfnb.agents.mcp_server")

INSTRUCTIONS = ("qfnb: the Qianfan platform's models (chat, embeddings, rerank) and the user's datasets and "
                "evaluation results. Models are named as on the platform; leave model out for the default.")
#: the most rows one dataset_rows call returns, and the most texts one embeddings call takes
MAX_ROWS, MAX_TEXTS = 100, 64


def _result(resp: QfResponse[Any]) -> dict[str, Any]:
    """A console answer's ``result`` as the platform sent it (a list as ``results``): the agent reads the
    platform's own fields."""
    result = resp.body.get("result")
    return {"results": result} if isinstance(result, list) else dict(result or {})


def chat(prompt: str, model: str | None = None, system: str | None = None, max_tokens: int = 512,
         temperature: float | None = None) -> str:
    """Ask a chat model; returns its answer.

    Args:
        prompt: The user's message.
        model: The platform's model name (default: the platform's default chat model).
        system: An optional system instruction.
        max_tokens: The most tokens the answer may have.
        temperature: Sampling temperature (0 to 1); the model's default when left out.
    """
    fields: dict[str, Any] = {"max_output_tokens": max_tokens}
    if system:
        fields["system"] = system
    if temperature is not None:
        fields["temperature"] = temperature
    return str(ChatCompletion().do(messages=[{"role": "user", "content": prompt}], model=model, **fields).result)


def embeddings(texts: list[str], model: str | None = None) -> dict[str, list[list[float]]]:
    """Embed texts; returns ``{"embeddings": [...]}``, one vector per text, in order.

    Args:
        texts: The texts (at most 64).
        model: The embedding model (default: the platform's).
    """
    if not texts or len(texts) > MAX_TEXTS:
        raise ValueError(f"texts must hold 1 to {MAX_TEXTS} strings, not {len(texts)}")
    return {"embeddings": [item.embedding for item in Embedding().do(texts=texts, model=model).parsed.data]}


def rerank(query: str, documents: list[str], top_n: int | None = None,
           model: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Rank documents by relevance to a query; returns ``{"results": [...]}``: index, document and
    relevance score, best first.

    Args:
        query: What the documents should answer.
        documents: The candidate texts.
        top_n: How many to return (default: all).
        model: The reranker (default: the platform's).
    """
    fields: dict[str, Any] = {"top_n": top_n} if top_n is not None else {}
    results = Reranker().do(query=query, documents=documents, model=model, **fields).parsed.results
    return {"results": [r.model_dump(include={"index", "document", "relevance_score"}) for r in results]}


def dataset_info(dataset_id: str) -> dict[str, Any]:
    """A dataset's description: name, type, size, versions and status.

    Args:
        dataset_id: The dataset's id on the platform.
    """
    return _result(Data.get_dataset_info(dataset_id))


def dataset_rows(dataset_id: str, offset: int = 0, limit: int = 20) -> dict[str, Any]:
    """A page of a dataset's rows.

    Args:
        dataset_id: The dataset's id on the platform.
        offset: The first row.
        limit: How many rows (at most 100).
    """
    if not 1 <= limit <= MAX_ROWS:
        raise ValueError(f"limit must be 1 to {MAX_ROWS}, not {limit}")
    return _result(Data.list_all_entity_in_dataset(dataset_id, offset=offset, page_size=limit))


def evaluation_info(eval_id: str) -> dict[str, Any]:
    """An evaluation's description and summary scores.

    Args:
        eval_id: The evaluation's id on the platform.
    """
    return _result(Model.get_evaluation_info(eval_id))


def evaluation_results(eval_id: str) -> dict[str, Any]:
    """An evaluation's results: the metrics of each evaluated model version.

    Args:
        eval_id: The evaluation's id on the platform.
    """
    return _result(Model.get_evaluation_result(eval_id))


TOOLS = (chat, embeddings, rerank, dataset_info, dataset_rows, evaluation_info, evaluation_results)


def _said(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its failures told to the agent (the server hides an unexpected error's text)."""
    @functools.wraps(fn)
    def tool(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # the agent reads the reason as the tool's error result
            log.info("%s failed: %s", fn.__name__, exc)
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc

    return tool


def build_server() -> MCPServer:
    """The MCP server with qfnb's tools."""
    server: MCPServer = MCPServer("qfnb", instructions=INSTRUCTIONS)
    for fn in TOOLS:
        server.add_tool(_said(fn))
    return server


def http_app(host: str = "127.0.0.1") -> Starlette:
    """The server as a streamable-HTTP ASGI app at ``/mcp`` (the SDK refuses a foreign Host/Origin;
    the caller adds the key check)."""
    return build_server().streamable_http_app(host=host)


def serve() -> None:
    """Run the server over stdio until stopped (the agent that started it holds its pipes)."""
    build_server().run("stdio")
