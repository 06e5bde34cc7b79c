"""The prompt-template library of the local platform (v1 ``/wenxinworkshop/prompt/...``):
templates you create, read, change, list and delete, as the cloud keeps them. Labels are the
cloud's own catalogue: the local platform has none (``label/list`` answers an empty page), and
a template given ``labelIds`` is refused with a sentence saying so."""

from __future__ import annotations

import re
from typing import Any

from qfnb.local.domain.state import site
from qfnb.local.domain.state.site import Site
from qfnb.local.domain.state.values import BodyError, bounded_int

__all__ = ["create", "delete", "info", "list_labels", "list_page", "update"]

_IDENTIFIERS = ("{}", "{{}}", "[]", "[[]]", "()", "(())")
#: a template of the user's own (the cloud's presets are type 1)
USER_TYPE = 2
MAX_CHARS = 10_000


def _variables(template: str, identifier: str) -> str:
    half = len(identifier) // 2
    left, right = re.escape(identifier[:half]), re.escape(identifier[half:])
    return ",".join(dict.fromkeys(re.findall(f"{left}([A-Za-z_][A-Za-z0-9_]*){right}", template)))


def _text(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BodyError(field, "must be a non-empty string")
    if len(value) > MAX_CHARS:
        raise BodyError(field, f"is limited to {MAX_CHARS} characters here")
    return value


def _identifier(body: dict[str, Any], default: str) -> str:
    value = body.get("variableIdentifier") or default
    if value not in _IDENTIFIERS:
        raise BodyError("variableIdentifier", f"must be one of {list(_IDENTIFIERS)}, got {value!r}")
    return str(value)


def _no_labels(body: dict[str, Any]) -> None:
    if body.get("labelIds"):
        raise BodyError("labelIds", "the local platform has no prompt labels (the cloud's catalogue); leave them out")


def _view(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in rec.items() if k not in ("id", "sid", "created")}
    return {"templateId": rec["id"], "templatePK": rec["sid"], **out, "labels": [], "creatorName": "qfnb",
            "type": USER_TYPE}


def create(platform: Site, body: dict[str, Any]) -> dict[str, Any]:
    name = _text(body, "templateName", required=True)
    content = _text(body, "templateContent", required=True)
    assert name is not None and content is not None
    if platform.store.all("prompts", lambda r: r.get("templateName") == name):
        raise BodyError("templateName", f"a template named {name!r} already exists")
    _no_labels(body)
    identifier = _identifier(body, "{}")
    negative = _text(body, "negativeTemplateContent", required=False)
    rec = platform.store.insert("prompts", {
        "templateName": name, "templateContent": content, "variableIdentifier": identifier,
        "templateVariables": body.get("templateVariables") or _variables(content, identifier),
        "sceneType": int(body.get("sceneType") or 1), "frameworkType": int(body.get("frameworkType") or 0),
        "negativeTemplateContent": negative or "",
        "negativeTemplateVariables": _variables(negative, identifier) if negative else ""})
    return {"templateId": rec["id"], "templatePK": rec["sid"]}


def info(platform: Site, body: dict[str, Any]) -> dict[str, Any]:
    rec = site.get(platform, "prompts", body.get("id"), "id")
    return {**_view(rec), "content": rec["templateContent"]}


def update(platform: Site, body: dict[str, Any]) -> dict[str, Any]:
    rec = site.get(platform, "prompts", body.get("templateId"), "templateId")
    _no_labels(body)
    identifier = _identifier(body, rec["variableIdentifier"])
    changes: dict[str, Any] = {field: value for field in ("templateName", "templateContent", "negativeTemplateContent")
                               if (value := _text(body, field, required=False)) is not None}
    changes["variableIdentifier"] = identifier
    content = changes.get("templateContent", rec["templateContent"])
    changes["templateVariables"] = _variables(content, identifier)
    negative = changes.get("negativeTemplateContent", rec.get("negativeTemplateContent"))
    changes["negativeTemplateVariables"] = _variables(negative, identifier) if negative else ""
    rec = platform.store.update("prompts", rec["id"], **changes)
    return {"templateId": rec["id"], "templatePK": rec["sid"]}


def delete(platform: Site, body: dict[str, Any]) -> bool:
    rec = site.get(platform, "prompts", body.get("templateId"), "templateId")
    return platform.store.delete("prompts", rec["id"])


def _page(body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    offset, size = bounded_int(body, "offset", 0, 0, 2**31), bounded_int(body, "pageSize", 10, 1, 2**31)
    return {"total": len(items), "items": items[offset:offset + size]}


def list_page(platform: Site, body: dict[str, Any]) -> dict[str, Any]:
    """A page of templates, filtered by ``name`` (a substring) and ``type`` (2: yours)."""
    name, kind = body.get("name"), body.get("type")
    if body.get("labelIds"):
        return {"total": 0, "items": []}  # no template here has a label
    found = [_view(r) for r in platform.store.all("prompts")
             if (not name or str(name) in r["templateName"]) and kind in (None, USER_TYPE)]
    return _page(body, found)


def list_labels(platform: Site, body: dict[str, Any]) -> dict[str, Any]:
    return _page(body, [])
