"""Where an inference call goes: model name or endpoint → :class:`Target` (pure), and the
official SDK's :class:`QfLLMInfo` view of it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from qfnb._core.errors import ValidationError
from qfnb.protocol.wires.qianfan import routes
from qfnb.protocol.wires.qianfan.routes import Target

__all__ = ["QfLLMInfo", "RenamedModelWarning", "Target", "class_or_instance_method", "model_info", "resolve_target",
           "service_names", "v2_model_id"]


class RenamedModelWarning(UserWarning):
    """A model name of the 2024 catalog was sent under the id the v2 API gives it now."""


#: the renamed models this process has already said it sends under their v2 ids
_RENAMES_SAID: set[str] = set()


class class_or_instance_method(classmethod):  # type: ignore[type-arg]
    """A classmethod that gets the instance instead when called on one."""

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return super().__get__(instance, owner)
        return self.__func__.__get__(instance, owner)


def _services(services: dict[str, Any] | None) -> Iterator[tuple[str, str, dict[str, Any], list[str]]]:
    """Each named entry of a ``service/list`` result: its group, name, entry and URL path parts."""
    for group in ("common", "custom"):
        for entry in (services or {}).get(group) or []:
            name = (entry.get("name") or entry.get("serviceName")) if isinstance(entry, dict) else None
            if name:
                yield group, str(name), entry, [p for p in str(entry.get("url") or "").split("?")[0].split("/") if p]


def _services_index(services: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """``{lower(name): (api_type, endpoint)}`` from a ``service/list`` result."""
    index: dict[str, tuple[str, str]] = {}
    for group, name, entry, parts in _services(services):
        if len(parts) >= 2 and parts[-2] in routes.API_TYPES:
            api = entry.get("apiType") or parts[-2]
            index.setdefault(name.lower(), (str(api), parts[-1]))
            if group == "custom":  # a deployed service answers to its endpoint too (what %qfmodels lists)
                index.setdefault(parts[-1].lower(), (str(api), parts[-1]))
    return index


def resolve_target(api_types: tuple[str, ...], model: str | None, endpoint: str | None, *,
                   default_model: str | None, services: dict[str, Any] | None, verbatim: bool = False) -> Target | None:
    """Pure: the target for ``model``/``endpoint``. None means "not known without the dynamic list".

    ``endpoint`` wins: a custom service under the first api type, or (as the official SDK
    routes ``Completion(model=<a chat model>, endpoint=E)``) under the first api type whose
    built-in catalog knows ``model``. A model name is looked up case-insensitively in the
    dynamic list first, then in the built-in catalog. ``verbatim`` (``QIANFAN_USE_CUSTOM_ENDPOINT``):
    an ``endpoint`` is the whole path below the model API prefix.
    """
    if endpoint:
        api = next((a for a in api_types if model and routes.builtin_endpoint(a, model)), api_types[0])
        return Target(api, endpoint.strip("/"), verbatim=verbatim)
    name = model or default_model
    if not name:
        raise ValidationError("model", f"no model given and no default for {api_types[0]}")
    found = _services_index(services).get(name.lower())
    if found is not None and found[0] in api_types:
        return Target(found[0], found[1], name)
    for api in api_types:
        ep = routes.builtin_endpoint(api, name)
        if ep is not None:
            return Target(api, ep, name)
    return None


def v2_model_id(name: str) -> str:
    """The id the v2 API takes for ``name``: a 2024 name the cloud renamed (``ERNIE-Bot``) is its
    successor (``ernie-3.5-8k``), and a model the catalog lists as retired its replacement (a call to it
    would only be refused), said once per process (a :class:`RenamedModelWarning`, which a notebook
    shows under the cell); any other name as given."""
    # deferred: reads the dated catalog on first use
    from qfnb.protocol.console.cloud_models import CATALOG_DATE, current_id, name_key, retirement, successor

    renamed = successor(name) or name
    # a 2024 name goes to a model that still answers; a v2 id is sent as given (the catalog may be behind)
    new = current_id(name) if name_key(renamed) != name_key(name) else renamed
    if name_key(new) != name_key(name) and name not in _RENAMES_SAID:
        _RENAMES_SAID.add(name)
        why = f"{name} is called {renamed} on the v2 API" if name_key(renamed) != name_key(name) else name
        if new != renamed:
            retired = retirement(renamed)
            why += (f", retired on {retired[0]}" if retired else ", retired") + f" (model catalog of {CATALOG_DATE})"
        warnings.warn(f"{why}: sent as {new}", RenamedModelWarning, stacklevel=4)
    return new


def service_names(services: dict[str, Any] | None, api_types: tuple[str, ...]) -> set[str]:
    """The model names a ``service/list`` result serves under ``api_types``."""
    return {name for _, name, entry, parts in _services(services)
            if (entry.get("apiType") or (parts[-2] if len(parts) >= 2 else "")) in api_types}


@dataclass
class QfLLMInfo:
    """What the official SDK's ``get_model_info`` returns: the model's path below the API
    prefix (``/chat/completions``), its api type and the body keys known for it."""

    endpoint: str
    required_keys: set[str] = field(default_factory=set)
    optional_keys: set[str] = field(default_factory=set)
    max_input_chars: int | None = None
    max_input_tokens: int | None = None
    input_price_per_1k_tokens: float = 0.0
    output_price_per_1k_tokens: float = 0.0
    deprecated: bool = False
    api_type: str = ""


def model_info(target: Target) -> QfLLMInfo:
    """The :class:`QfLLMInfo` of a resolved target."""
    info = routes.builtin_model(target.api_type, target.model)
    chars, tokens = info.get("max_input_chars"), info.get("max_input_tokens")
    return QfLLMInfo(endpoint=target.path, api_type=target.api_type,
                     max_input_chars=chars if isinstance(chars, int) else None,
                     max_input_tokens=tokens if isinstance(tokens, int) else None,
                     deprecated=bool(info.get("deprecated", False)))
