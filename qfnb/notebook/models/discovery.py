"""Discovery: ``%qfmodels`` (what can answer), Tab completion for the magics, "did you mean".

The model list comes from the platform's ``service/list`` (for the embedded platform: the
models of this data dir and the endpoints deployed in it), with the SDK's built-in catalog as
the fallback when the list cannot be read. Completion never waits on the network: it offers
what is cached and refreshes the cache on a background thread.
"""

from __future__ import annotations

import difflib
import logging
import math
import shlex
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qfnb import resources
from qfnb._core.runtime import sync
from qfnb.notebook.models.roles import is_base, role
from qfnb.protocol.wires.qianfan import routes
from qfnb.resources.defaults import default_model
from qfnb.resources.safe_html import clean, escape

log = logging.getLogger("qfnb.notebook.models.discovery")
#: every name cache in this process, so that a model added here shows at once
_CACHES: weakref.WeakSet[NameCache] = weakref.WeakSet()

#: Options whose value is a model / endpoint name.
MODEL_OPTIONS = frozenset({"-m", "--model", "--models", "--judge", "--base"})
ENDPOINT_OPTIONS = frozenset({"--endpoint"})
METRIC_OPTIONS = frozenset({"--metrics", "--chart"})
_KINDS = {"chat": "chat", "embeddings": "embedding", "completions": "completion", "reranker": "reranker",
          "text2image": "text-to-image"}


@dataclass(frozen=True)
class ModelRow:
    kind: str  # chat | embedding | completion | reranker | text-to-image | endpoint
    name: str  # a model name, or an endpoint to pass as --endpoint
    served_by: str  # what answers: the platform's model / service, and its state
    default: bool = False
    embeds: bool = False  # the same model serves embeddings too (a reranker ranking by their cosine)

    @property
    def role(self) -> str:
        return role(self.kind, self.name, embeds=self.embeds)


def endpoint_of(url: str) -> str:
    return url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


def rows_from_services(services: Mapping[str, Any], defaults: Mapping[str, str | None]) -> list[ModelRow]:
    rows: list[ModelRow] = []
    seen: set[tuple[str, str]] = set()
    common = services.get("common") or []
    embedders = {str(e.get("name") or "") for e in common if e.get("apiType") == "embeddings"}
    for entry in common:
        kind = _KINDS.get(str(entry.get("apiType") or ""))
        name = str(entry.get("name") or "")
        if kind is None or not name or (kind, name) in seen:
            continue
        seen.add((kind, name))
        served = f"{entry.get('apiType')}/{endpoint_of(str(entry.get('url') or ''))}"
        rows.append(ModelRow(kind, name, served, default=defaults.get(kind) == name,
                             embeds=kind == "reranker" and name in embedders))
    for entry in services.get("custom") or []:
        ep = endpoint_of(str(entry.get("url") or ""))
        status = entry.get("serviceStatus") or ""
        served = f"service {entry.get('name') or '?'} ({entry.get('serviceId', '?')}, {status})".replace(", )", ")")
        rows.append(ModelRow("endpoint", ep, served))
    order = {"chat": 0, "embedding": 1, "completion": 2, "text-to-image": 3, "endpoint": 4}
    return sorted(rows, key=lambda r: (order.get(r.kind, 9), not r.default, r.name))


def rows_from_catalog(defaults: Mapping[str, str | None]) -> list[ModelRow]:
    rows = [ModelRow(kind, name, "built-in catalog", default=defaults.get(kind) == name)
            for api, kind in _KINDS.items() for name in routes.model_catalog().get(api, {}).get("models", {})]
    return sorted(rows, key=lambda r: (list(_KINDS.values()).index(r.kind), not r.default, r.name))


def rows_from_cloud_catalog(defaults: Mapping[str, str | None]) -> list[ModelRow]:
    """The v2 cloud's current models (the dated catalog), as a 2026 account calls them."""
    from qfnb.protocol.console.cloud_models import CATALOG_DATE, cloud_models  # deferred: reads the catalog

    rows = [ModelRow(_KINDS[m.kind], m.id, f"v2 API ({_context(m.context_window)}catalog of {CATALOG_DATE})",
                     default=defaults.get(_KINDS[m.kind]) == m.id)
            for m in cloud_models() if m.kind in _KINDS]
    return sorted(rows, key=lambda r: (list(_KINDS.values()).index(r.kind), not r.default, r.name))


def _context(tokens: int | None) -> str:
    return f"{tokens // 1000}k context, " if tokens else ""


class ModelList:
    """``%qfmodels``: a table of the chat / embedding models and this platform's endpoints."""

    def __init__(self, rows: list[ModelRow], source: str) -> None:
        self.rows, self.source = rows, source

    def names(self, kind: str | None = None, *, chat: bool = False) -> list[str]:
        """Names of ``kind`` (None: all); ``chat=True`` leaves out base models (not for chat)."""
        return [r.name for r in self.rows if (kind is None or r.kind == kind) and not (chat and is_base(r.name))]

    def __repr__(self) -> str:
        if not self.rows:
            return f"no models ({self.source})"
        width = max(len(r.name) for r in self.rows) + 4
        lines = [f"{'kind':<11}{'name':<{width}}{'role':<23}served by   [{self.source}]"]
        for r in self.rows:
            lines.append(f"{r.kind:<11}{r.name + (' *' if r.default else ''):<{width}}{r.role:<23}{r.served_by}")
        lines.append("* default · use: %%qfchat -m NAME   or   %%qfchat --endpoint ENDPOINT")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td>{escape(r.kind)}</td><td><code>{escape(r.name)}</code>"
            f"{' <b>(default)</b>' if r.default else ''}</td><td>{escape(r.role)}</td>"
            f"<td>{escape(r.served_by)}</td></tr>"
            for r in self.rows
        )
        return clean(
            '<div class="qfnb-models"><table class="qfnb-table"><thead><tr><th>kind</th><th>name</th><th>role</th>'
            f"<th>served by</th></tr></thead><tbody>{body}</tbody></table>"
            f'<div class="qfnb-muted">{escape(self.source)} · use <code>%%qfchat -m NAME</code> or '
            "<code>%%qfchat --endpoint ENDPOINT</code></div></div>"
        )


class AmbiguousName(ValueError):
    """A model word that names more than one thing ``%qfmodels`` lists."""


def resolve_name(word: str, listing: ModelList | None, option: str = "-m") -> tuple[str | None, str | None]:
    """``(model, endpoint)`` for a word given as a model: whatever ``%qfmodels`` lists is accepted,
    a deployed service's endpoint included. An exact name wins; else one case-insensitive match;
    several matches raise :class:`AmbiguousName` listing them. A name the list lacks is passed on
    as a model (the platform has the last word)."""
    if listing is None:
        return word, None
    if word.lower().startswith("endpoint:"):
        return None, word.split(":", 1)[1]
    callable_rows = [r for r in listing.rows if r.kind in ("chat", "completion", "endpoint")]
    found = [r for r in callable_rows if r.name == word] or [r for r in callable_rows if r.name.lower() == word.lower()]
    kinds = {r.kind == "endpoint" for r in found}
    if len(kinds) > 1:
        listed = ", ".join(f"{r.kind} {r.name}" for r in found)
        raise AmbiguousName(f"{option} {word}: matches {listed}; say -m {found[0].name} for the model or "
                            f"-m endpoint:{word} (or --endpoint {word}) for the deployed service")
    names = sorted({r.name for r in found})
    if len(names) > 1:
        raise AmbiguousName(f"{option} {word}: matches {', '.join(names)}; give the exact name")
    if not found:
        return word, None
    row = found[0]
    return (None, row.name) if row.kind == "endpoint" else (row.name, None)


def _defaults() -> dict[str, str | None]:
    return {"chat": default_model("chat"), "embedding": default_model("embedding")}


def fetch_services(timeout: float | None = 30.0) -> dict[str, Any]:
    client = resources.ChatCompletion().client
    return sync.run(client.list_services(), timeout=timeout)


def list_models(fetch: Callable[[], Mapping[str, Any]] = fetch_services) -> ModelList:
    """The platform's list; on a v2 account (an API key) the v2 cloud's dated catalog; the built-in
    catalog (said so) when the list cannot be read."""
    defaults = _defaults()
    if fetch is fetch_services and _v2_account():
        return ModelList(rows_from_cloud_catalog(defaults), "the v2 cloud's model catalog; any other model id "
                                                            "the platform serves works too (-m ID)")
    try:
        services = fetch()
    except Exception as exc:  # no console keys, the platform is down, ...
        log.warning("could not read the platform's model list: %s", exc)
        return ModelList(rows_from_catalog(defaults), f"built-in catalog (service list unavailable: {exc})")
    return ModelList(rows_from_services(services, defaults), "the platform's service list")


def _v2_account() -> bool:
    """Whether calls go to the cloud's v2 API (a v2 API key; never the embedded platform)."""
    try:
        chat = resources.ChatCompletion()
        return chat.version == 2 and not chat.config.embedded
    except Exception:  # a broken config shows up on the call itself
        return False


def forget_models() -> None:
    """Refresh every name cache of this process (``qfnb.local_models.add``/``rm`` call this)."""
    for cache in list(_CACHES):
        cache.invalidate()


class NameCache:
    """Model and endpoint names for completion: never blocks; refreshed in the background."""

    def __init__(self, fetch: Callable[[], ModelList] = list_models, ttl: float = 60.0) -> None:
        self.fetch, self.ttl = fetch, ttl
        self.listing: ModelList | None = None
        self._stamp = 0.0
        self._lock = threading.Lock()
        self._busy = False
        _CACHES.add(self)

    def invalidate(self) -> None:
        """The names changed (a model was added or removed): refresh now, in the background."""
        self._stamp = -math.inf
        self.get()

    def set(self, listing: ModelList) -> None:
        self.listing, self._stamp = listing, time.monotonic()

    def _refresh(self) -> None:
        try:
            self.set(self.fetch())
        except Exception:
            log.debug("model list refresh failed", exc_info=True)
        finally:
            self._busy = False

    def get(self, wait: float = 0.0) -> ModelList | None:
        with self._lock:
            stale = self.listing is None or time.monotonic() - self._stamp > self.ttl
            if stale and not self._busy:
                self._busy = True
                thread = threading.Thread(target=self._refresh, name="qfnb-models", daemon=True)
                thread.start()
                if wait:
                    thread.join(wait)
        return self.listing


def option_strings(parser: Any) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings]


def did_you_mean(message: str, options: Iterable[str]) -> str:
    """``"unrecognized arguments: --modle x"`` -> the message plus ``did you mean --model?``."""
    if "unrecognized arguments" not in message:
        return message
    opts = list(options)
    hints = [f"{word} -> {close[0]}" for word in message.split(":", 1)[-1].split() if word.startswith("-")
             and (close := difflib.get_close_matches(word.split("=")[0], opts, n=1, cutoff=0.6))]
    return f"{message} (did you mean: {', '.join(hints)}?)" if hints else message


def complete_line(line: str, token: str, parser: Any, names: Callable[[str], list[str]]) -> list[str] | None:
    """Completions for ``token`` at the end of a magic's ``line`` (None: not ours to complete)."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if line and not line[-1].isspace() and words:
        words = words[:-1]  # the word under the cursor
    previous = words[-1] if len(words) > 1 else ""
    if previous in MODEL_OPTIONS or previous in ENDPOINT_OPTIONS or previous in METRIC_OPTIONS:
        kind = ("endpoint" if previous in ENDPOINT_OPTIONS else "metric" if previous in METRIC_OPTIONS
                else "model")
        return sorted(n for n in names(kind) if n.startswith(token))
    if token.startswith("-") or (line.endswith(" ") and token == ""):
        return sorted(o for o in option_strings(parser) if o.startswith(token) and o.startswith("--" if
                      token.startswith("--") else "-"))
    return None
