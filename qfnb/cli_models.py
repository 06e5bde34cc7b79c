"""``qfnb models add|list|ps|rm|unload|du``: the local platform's model store, as ``ollama`` users know it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from qfnb.protocol.platform.daemon import MODEL_ROLES

#: short role names the command takes too
_ROLE_ALIASES = {"embed": "embeddings"}


def add_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="the local platform's models: add, list, ps, rm, unload, du, export")
    msub = models.add_subparsers(dest="models_command", required=True)
    add = msub.add_parser("add", help="add a GGUF file, a Hugging Face dir or an OpenAI-API engine")
    add.add_argument("path", nargs="?", type=Path,
                     help="a .gguf file, a Hugging Face model dir, or an .onnx embedder (tokenizer.json beside it)")
    add.add_argument("--name", required=True, help="the model's name on the platform")
    add.add_argument("--role", action="append", default=[], type=lambda r: _ROLE_ALIASES.get(r, r),
                     choices=list(MODEL_ROLES),
                     help="what it serves (repeatable; default: what the model is; embed = embeddings)")
    add.add_argument("--template", help="a chat template file (jinja) instead of the GGUF's own")
    add.add_argument("--ctx", type=int, help="context tokens per request (default: the model's, at most 4096)")
    add.add_argument("--keep-alive", type=float, help="seconds idle before unload (-1: never; default 600)")
    add.add_argument("--engine", help="an engine URL (OpenAI API, e.g. http://host:7860/v1) instead of a path")
    for name, text in (("list", "the models in the store"), ("ps", "the engines loaded now"),
                       ("du", "the store's size, and what rm would free"),
                       ("rm", "remove a model (refused while in use)"), ("unload", "stop a model's engine now")):
        cmd = msub.add_parser(name, help=text)
        if name in ("rm", "unload"):
            cmd.add_argument("name")
    export = msub.add_parser("export", help="write a tuned model as GGUF (its LoRA adapter, or merged)")
    export.add_argument("name", help="a service's name or endpoint, a published model, or a fine-tune task id")
    export.add_argument("--gguf", required=True, type=Path, help="the .gguf file to write")
    export.add_argument("--merge", action="store_true", help="base + adapter in one GGUF (default: the adapter)")
    export.add_argument("--force", action="store_true", help="replace an existing file")
    for cmd in msub.choices.values():
        cmd.add_argument("--data-dir", type=Path, default=None, help="state dir (default $QFNB_DATA_DIR or ~/.qfnb)")


def _mib(n: int | None) -> str:
    return f"{(n or 0) / 2**20:,.0f} MiB"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def run(args: argparse.Namespace) -> int:
    from qfnb import local_models as lm  # deferred: loads the daemon's client (`qfnb --help` does not)

    try:
        return _run(lm, args)
    except (lm.ModelStoreError, ValueError) as exc:
        print(f"qfnb models {args.models_command}: {exc}", file=sys.stderr)
        return 1


def _run(lm: Any, args: argparse.Namespace) -> int:
    cmd, data_dir = args.models_command, args.data_dir
    if cmd == "add":
        entry = lm.add(args.path, name=args.name, role=args.role or None, template=args.template, ctx=args.ctx,
                       keep_alive=args.keep_alive, engine=args.engine, data_dir=data_dir)
        print(f"added {entry['name']} ({entry['kind']}, {_mib(entry['size'])}, roles: {', '.join(entry['roles'])})")
        return 0
    if cmd == "list":
        added = lm.list(data_dir)
        if not added:  # a header over nothing read as a failure
            print("no models added: the built-in models serve without being added (qfnb models ps: those loaded; "
                  "qfnb models add PATH --name NAME adds one)")
        else:
            rows = [["NAME", "KIND", "SIZE", "ROLES", "FROM", "ADDED"]]
            rows += [[m["name"], m["kind"], _mib(m["size"]), ",".join(m["roles"]), m["source"],
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(m["added"]))] for m in added]
            print(_table(rows))
        mapped = [["CLOUD NAME", "API", "ANSWERED LOCALLY BY"]]
        mapped += [[m["cloud"], m["apiType"], m["local"]] for m in lm.mapping(data_dir)]
        print("\ncloud model names served offline:\n" + _table(mapped))
        return 0
    if cmd == "ps":
        _ps(lm.ps(data_dir))
        return 0
    if cmd == "du":
        usage = lm.du(data_dir)
        print(f"{usage['path']}: {_mib(usage['bytes'])}")
        for m in usage["models"]:
            print(f"  {m['name']}: {_mib(m['size'])}, rm frees {_mib(m['freed_by_rm'])}")
        return 0
    if cmd == "rm":
        result = lm.rm(args.name, data_dir)
        print(f"removed {result['removed']} (freed {_mib(result['freedBytes'])})")
        return 0
    if cmd == "export":
        return _export(lm, args)
    result = lm.unload(args.name, data_dir)
    print(f"unloaded {args.name}" if result["unloaded"] else f"{args.name} was not loaded")
    return 0


def _ps(loaded: list[dict[str, Any]]) -> None:
    """``qfnb models ps``: the loaded models' table, or a sentence when none is loaded."""
    if not loaded:  # a header over nothing read as a failure (as models list's did)
        print("no model loaded: a model loads on its first call and unloads when idle "
              "(qfnb models list: the names served)")
        return
    rows = [["NAME", "STATE", "PID", "RESIDENT", "BUSY/SLOTS", "QUEUED", "UNLOAD IN"]]
    for r in loaded:
        until = r.get("unloadIn")
        # an engine without a process of its own (the embedder) lives in the platform's memory
        resident = _mib(r.get("rssBytes")) if r.get("pid") else "in the platform (qfnb status)"
        rows.append([r["model"], r["state"], str(r.get("pid") or "-"), resident,
                     f"{r['busy']}/{r['slots']}", str(r["queued"]),
                     "never" if until is None and r.get("pid") else "-" if until is None else f"{until:.0f} s"])
    print(_table(rows))


def _export(lm: Any, args: argparse.Namespace) -> int:
    out = lm.export(args.name, gguf=args.gguf, merge=args.merge, overwrite=args.force, data_dir=args.data_dir)
    what = f"{out['base']} + adapter, merged" if out["merged"] else f"LoRA adapter for {out['base']}"
    print(f"wrote {out['gguf']} ({what}, {_mib(out['bytes'])})")
    if not out["merged"]:
        print(f"  serve it: llama-server -m {out['baseGguf']} --lora {out['gguf']}")
    return 0
