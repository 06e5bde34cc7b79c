"""The prompt hub (the official ``qianfan.common.hub``): save a
:class:`~qfnb.resources.prompts.template.Prompt` to a JSON string, a file or the platform, and load
it back (``load("prompt/NAME")`` pulls a platform prompt).

The JSON is the official SDK's (``{"sdk_version", "obj": {"module", "type", "args"}}``), so files
move between the two. Loading builds only the types listed in :data:`HUB_TYPES` (the official
loader imports whatever module a file names)."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

from qfnb._core.errors import ValidationError
from qfnb.protocol.version import __version__
from qfnb.resources.console.consts import PromptFrameworkType, PromptSceneType, PromptType
from qfnb.resources.prompts.template import Prompt, PromptLabel

__all__ = ["HUB_TYPES", "HubSerializable", "dumps", "encoding", "load", "loads", "push", "save"]


class HubSerializable:
    """The official base of what the hub saves; qfnb's hub saves the types in :data:`HUB_TYPES`."""


def encoding() -> str:
    """The text encoding of hub files."""
    return "utf-8"


#: the types a hub document may hold, by name (the module named beside it is not imported)
_TYPES: dict[str, type[Any]] = {"Prompt": Prompt, "PromptLabel": PromptLabel, "PromptType": PromptType,
                                "PromptSceneType": PromptSceneType, "PromptFrameworkType": PromptFrameworkType}
HUB_TYPES = tuple(_TYPES)
#: the official module of each type, written beside it (so the official SDK loads qfnb's files)
_MODULES = {"Prompt": "qianfan.common.prompt.prompt", "PromptLabel": "qianfan.common.prompt.prompt",
            "PromptType": "qianfan.consts", "PromptSceneType": "qianfan.consts",
            "PromptFrameworkType": "qianfan.consts"}


#: what a saved object leaves out (a platform id belongs to one account)
_UNSAVED = {"Prompt": ("_mode", "id")}


def dumps(obj: Any) -> Any:
    """``obj`` as the hub's JSON-ready value."""
    kind = type(obj).__name__
    if isinstance(obj, enum.Enum):
        return {"module": _MODULES.get(kind, ""), "type": kind, "args": {"value": obj.value}}
    if kind in ("Prompt", "PromptLabel"):
        args = {k: dumps(v) for k, v in obj.__dict__.items() if k not in _UNSAVED.get(kind, ())}
        return {"module": _MODULES[kind], "type": kind, "args": args}
    if isinstance(obj, list | tuple):
        return [dumps(i) for i in obj]
    if isinstance(obj, dict):
        return {"module": "", "type": "dict", "args": {k: dumps(v) for k, v in obj.items()}}
    return obj


def loads(data: Any) -> Any:
    """The object a :func:`dumps` value describes."""
    if isinstance(data, list):
        return [loads(i) for i in data]
    if not isinstance(data, dict):
        return data
    kind = data.get("type")
    args = data.get("args") or {}
    if kind == "dict":
        return {k: loads(v) for k, v in args.items()}
    cls = _TYPES.get(str(kind))
    if cls is None:
        raise ValidationError("type", f"the hub loads only {', '.join(HUB_TYPES)}, not {kind!r}")
    if issubclass(cls, enum.Enum):
        return cls(args["value"])
    return cls(**{k: loads(v) for k, v in args.items()})


def save(obj: Any, to_platform: bool = False, path: str | Path | None = None,
         dump_args: dict[str, Any] | None = None) -> str:
    """``obj`` serialized (returned); also written to ``path``, and pushed to the platform."""
    if type(obj).__name__ not in _MODULES or isinstance(obj, enum.Enum):
        raise ValidationError("obj", f"the type `{type(obj).__name__}` cannot be saved by the hub")
    text = json.dumps({"sdk_version": __version__, "obj": dumps(obj)},
                      **{"ensure_ascii": False, **(dump_args or {})})
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    if to_platform:
        push(obj)
    return text


def push(obj: Any) -> None:
    """Create or update ``obj`` on the platform."""
    if not hasattr(obj, "_hub_push"):
        raise ValidationError("obj", f"the type `{type(obj).__name__}` cannot be pushed to the platform")
    obj._hub_push()


def load(src: str | None = None, json_str: str | None = None, path: str | Path | None = None,
         url: str | None = None) -> Any:
    """From one source: ``src="prompt/NAME"`` (the platform), ``json_str``, ``path`` or ``url``."""
    given = [n for n, v in (("src", src), ("json_str", json_str), ("path", path), ("url", url)) if v is not None]
    if len(given) != 1:
        raise ValidationError("src", f"give exactly one of src, json_str, path, url (got {given or 'none'})")
    if src is not None:
        kind, sep, name = src.partition("/")
        if not sep or not name:
            raise ValidationError("src", f"must be <type>/<name>, e.g. prompt/my_prompt, got {src!r}")
        if kind != "prompt":
            raise ValidationError("src", f"the hub loads prompts from the platform, not {kind!r}")
        return Prompt._hub_pull(name)
    if path is not None:
        json_str = Path(path).read_text(encoding="utf-8")
    if url is not None:
        import httpx

        try:
            json_str = httpx.get(url, timeout=30).raise_for_status().text
        except httpx.HTTPError as exc:
            raise ValidationError("url", f"could not fetch it: {exc}") from None
    try:
        document = json.loads(str(json_str))
    except json.JSONDecodeError as exc:
        raise ValidationError("json_str", f"is not the hub's JSON: {exc}") from None
    if not isinstance(document, dict) or "obj" not in document:
        raise ValidationError("json_str", "is not the hub's JSON (no `obj`)")
    return loads(document["obj"])
