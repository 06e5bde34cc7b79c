"""Every magic with a 2026 account's key alone, in a real kernel, against the 2026 cloud double:
what each shows, and that no v1 route is ever used."""

from __future__ import annotations

import base64
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from tests.fakes.cloud_v2 import FakeQianfanV2
from tests.fakes.fixtures_v2 import key_only_env

log = logging.getLogger("qfnb.tests.v2_account")
ID = re.compile(r"/(file|batch|task|img)-[^/]+")  # an id the cloud made up, in a route
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
QA = '{"prompt": "What is LoRA?", "response": "A low-rank adapter"}\n{"prompt": "1+1?", "response": "2"}\n'


def run_cells(cells: list[str], tmp_path: Path, on_cell_executed: Any = None) -> list[Any]:
    nb = new_notebook(cells=[new_code_cell(c) for c in cells], metadata=KERNEL)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True, on_cell_executed=on_cell_executed,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return list(nb.cells)


def routes_by_cell(cloud: FakeQianfanV2) -> tuple[dict[int, list[str]], Any]:
    """``{cell index: the 'METHOD path's the cloud saw while it ran}`` and the hook that fills it."""
    seen: dict[int, list[str]] = {}
    done = [0]

    def hook(cell: Any, cell_index: int, **_: Any) -> None:
        new = cloud.requests[done[0]:]
        done[0] += len(new)
        seen[cell_index] = sorted({r.method + " " + ID.sub(r"/<\1>", r.path) for r in new})

    return seen, hook


def text(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"ERROR {out.ename}: {out.evalue}")
        else:
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def errors(cells: list[Any]) -> list[str]:
    return [f"{c.source!r}: {o.ename}: {o.evalue}" for c in cells for o in c.outputs if o.output_type == "error"]


#: a cell of each magic qfnb registers, with a typical line (index: what the assertions below read)
CELLS = [
    "%load_ext qfnb",
    "%%qfchat\n你好",
    "%%qfchat -m ernie-4.5-turbo-128k\nExplain LoRA",
    "%%qfchat -m ERNIE-Bot\nold name",
    "%%qfchat -s tutor\n我叫小明",
    "%%qfchat -s tutor\n我叫什么?",
    "%qfmodels",
    "%qfimage 一只布偶猫",
    "%qfeval --models ernie-4.5-turbo-128k --dataset qa.jsonl --metrics rouge_l -o ev",
    "qs = ['What is LoRA?', '1+1?']",
    "%qfbatch qs -m ernie-4.5-turbo-128k -o job",
    "print(job.results()[1]['result'])",
    "%qfusage",
    "%%qfimage -o picture\n一只橘猫",  # 13
    "%qfchat sessions",
    "%qfchat history tutor",
    "%qfchat reset tutor",
    "%qfeval ev",
    "%qftrain",  # 18: the launcher form
    "%qftrain --dataset qa.jsonl --base ERNIE-Speed-8K",  # 19: refused by name, nothing started
    "%qftrace 5",
    "%qfcomplete",
    "%qfcache stats",
    "%qfusage --by cell          # calls, tokens, cache hits (the README's line, its note included)",
]
REFUSED = 19


def test_the_cells_name_every_magic_qfnb_registers(ip: Any) -> None:
    """The kernel test below runs each magic the extension registers (a new one must be added to it)."""
    registered = {name for kind in ("line", "cell") for name, fn in ip.magics_manager.magics[kind].items()
                  if getattr(fn, "__module__", "").startswith("qfnb.")}
    assert {"qfchat", "qfmodels", "qftrain", "qfeval", "qfimage", "qfbatch", "qftrace", "qfcomplete", "qfcache",
            "qfusage"} <= registered
    used = {m.group(1) for cell in CELLS for m in re.finditer(r"^%%?(\w+)", cell, re.M)}
    assert registered - used == set(), f"magics no cell of the v2 kernel test runs: {registered - used}"


@pytest.mark.sockets
# run alone (scripts/test.sh's second phase): beside three workers on 2 cores its %qfeval cell passed 180 s twice
# (rounds 37 and 38; alone the whole test takes ~36 s); the cause is not found
@pytest.mark.serial
def test_every_magic_works_with_the_key_alone(cloud_v2: FakeQianfanV2, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("QIANFAN_")]:
        monkeypatch.delenv(name)
    for name, value in key_only_env(cloud_v2).items():
        monkeypatch.setenv(name, value)
    (tmp_path / "qa.jsonl").write_text(QA, encoding="utf-8")
    routes, hook = routes_by_cell(cloud_v2)
    cells = run_cells(CELLS, tmp_path, hook)
    assert [e for e in errors(cells) if not e.startswith(repr(CELLS[REFUSED]))] == []
    log.warning("v2 routes per cell:\n%s", "\n".join(f"  {cells[i].source.splitlines()[0]!r}: {r}"
                                                       for i, r in sorted(routes.items())))
    for index in (1, 2, 3, 4, 5):  # every %%qfchat, a named session's included: the v2 chat route
        assert routes[index] == ["POST /v2/chat/completions"], (cells[index].source, routes[index])
    assert routes[6] == [], routes[6]  # %qfmodels: the v2 catalogue qfnb ships (a key alone reaches no console API)
    assert "POST /v2/images/generations" in routes[7], routes[7]
    assert routes[8] == ["POST /v2/chat/completions"], routes[8]  # %qfeval asks the model each item
    assert {"POST /v2/files", "POST /v2/batches", "GET /v2/batches/<batch>",
            "GET /v2/files/<file>/content"} <= set(routes[10]), routes[10]  # %qfbatch: upload, create, poll, read
    assert routes[12] == [], routes[12]  # %qfusage reads the local ledger
    assert "POST /v2/images/generations" in routes[13], routes[13]  # %%qfimage: a new prompt, asked
    for index in range(14, len(CELLS)):  # sessions, history, the launcher, a refused fine-tune, trace, cache ...
        assert routes[index] == [], (CELLS[index], routes[index])
    refused = text(cells[REFUSED])
    assert "UsageError" in refused and "QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY are not set" in refused
    assert "我叫小明" in text(cells[15])  # the kernel keeps a named session on the cloud (docs/local-platform.md)
    assert "rouge_l" in text(cells[17]) and "1 image(s)" in text(cells[13])
    assert "qfnb inline completions:" in text(cells[21])
    assert "calls" in text(cells[23]) and "ERROR" not in text(cells[23])
    chat, model, renamed, first, second, models, image, evaluation = (text(c) for c in cells[1:9])
    assert "echo[" in chat and ": 你好" in chat
    assert "echo[ernie-4.5-turbo-128k]: Explain LoRA" in model
    assert "echo[ernie-4.5-turbo-128k]: old name" in renamed
    assert "session tutor" in first and "1 turn in context" in second and "session tutor" in second
    assert "ernie-4.5-turbo-128k" in models and "v2 API" in models
    png = [o for o in cells[7].outputs if "image/png" in o.get("data", {})]
    assert png, "the image is an image output, not a link"
    from PIL import Image

    assert Image.open(io.BytesIO(base64.b64decode(png[0]["data"]["image/png"]))).format == "PNG"
    assert "1 image(s)" in image
    assert "rouge_l" in evaluation and "ernie-4.5-turbo-128k" in evaluation
    assert "echo[ernie-4.5-turbo-128k]: 1+1?" in text(cells[11])
    assert "ernie-4.5-turbo-128k" in text(cells[12])
    paths = {r.path for r in cloud_v2.requests}
    assert {"/v2/chat/completions", "/v2/images/generations", "/v2/files", "/v2/batches"} <= paths
    assert cloud_v2.v1_calls() == [] and not any(p.startswith("/rpc/") or "oauth" in p for p in paths)
    assert all(r.headers.get("authorization") == f"Bearer {cloud_v2.key}"
               for r in cloud_v2.requests if r.path.startswith("/v2/") and "fake-images" not in r.path)
    saved = "\n".join(text(c) for c in cells)
    assert cloud_v2.key not in saved and cloud_v2.key.split("/")[-1] not in saved
