"""Replay that is safe (issue 43): on Restart & Run All, a tool call inside a replayed answer gives
its recorded result and does not run again (under ``--yes`` too), and the cell says so;
``--rerun-tools`` runs it. End to end: ``%%qfchat --tools`` through qfnb's client and response
cache against the fake cloud, whose model asks for a side-effecting ``file_ticket``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.fakes.cloud import PREFIX, Captured

pytestmark = [pytest.mark.usefixtures("own_record_dir"), pytest.mark.sockets]

CELL = "File a ticket: the printer is on fire."


def _model(fake: Any) -> list[Captured]:
    """ERNIE-Bot on the fake cloud: asks for file_ticket, then answers from its result."""
    seen: list[Captured] = []

    def chat(req: Captured) -> dict[str, Any]:
        seen.append(req)
        body = req.json or {}
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        result = next((m["content"] for m in body.get("messages", []) if m.get("role") == "function"), None)
        if result is None and body.get("functions"):
            return {"id": "as-1", "object": "chat.completion", "result": "", "usage": usage,
                    "function_call": {"name": "file_ticket", "arguments": json.dumps({"title": "printer on fire"}),
                                      "thoughts": ""}}
        return {"id": "as-2", "object": "chat.completion", "result": f"Filed: {result}.", "usage": usage}

    fake.route("POST", f"{PREFIX}/chat/completions")(chat)
    return seen


def _run(ip: InteractiveShell, flags: str) -> None:
    ip.run_line_magic("qfchat", "reset")  # a restarted kernel has no session history
    ip.run_cell_magic("qfchat", f"-m ERNIE-Bot --tools file_ticket {flags}", CELL)


def _last_text(pub: Any) -> str:
    return str(pub.outputs[-1]["data"]["text/plain"])


def test_run_all_replays_a_yes_tool_call_instead_of_running_it_again(ip: InteractiveShell, pub: Any,
                                                                       cloud_env: Any) -> None:
    tickets: list[str] = []

    def file_ticket(title: str) -> str:
        """File a ticket."""
        tickets.append(title)
        return f"T-{len(tickets)}"

    ip.user_ns["file_ticket"] = file_ticket
    asked = _model(cloud_env)
    _run(ip, "--yes")
    assert tickets == ["printer on fire"] and len(asked) == 2
    assert "Filed: T-1." in _last_text(pub) and "replayed" not in _last_text(pub)
    for _ in range(2):  # Restart & Run All, twice: the model's answers replay, the ticket is not filed again
        _run(ip, "--yes")
        assert tickets == ["printer on fire"] and len(asked) == 2
        text = _last_text(pub)
        assert "↺ replayed its recorded result (not run again)" in text and "Filed: T-1." in text
        assert "1 call(s) in the replayed answer gave their recorded results" in text and "--rerun-tools" in text
        assert "replayed its recorded result" in pub.outputs[-1]["data"]["text/html"]
    _run(ip, "--yes --rerun-tools")  # asked for: it runs again
    assert tickets == ["printer on fire"] * 2
    assert "replayed its recorded" not in _last_text(pub)


def test_a_replayed_call_is_not_asked_again_and_fresh_runs_it(ip: InteractiveShell, pub: Any,
                                                              cloud_env: Any) -> None:
    tickets: list[str] = []

    def file_ticket(title: str) -> str:
        """File a ticket."""
        tickets.append(title)
        return "T-1"

    ip.user_ns["file_ticket"] = file_ticket
    asked = _model(cloud_env)
    _run(ip, "--yes")
    _run(ip, "")  # without --yes: nothing waits for Run or Skip, the recorded result is replayed
    assert tickets == ["printer on fire"] and len(asked) == 2
    box = next(o["data"] for o in reversed(pub.outputs) if "application/vnd.jupyter.widget-view+json" in o["data"])
    assert "waiting for approval" not in box["text/plain"]
    _run(ip, "--yes --fresh")  # the model asked again: its call is a new one, and runs
    assert tickets == ["printer on fire"] * 2 and len(asked) == 4


def test_a_skipped_call_is_not_recorded() -> None:
    from qfnb.agents import CachedToolResults, FunctionTool, StepReply, ToolLoop

    def f() -> str:
        """F."""
        return "ran"

    class Memory:
        def __init__(self) -> None:
            self.kept: dict[str, tuple[str, str]] = {}

        def recall(self, key: str) -> tuple[str, str] | None:
            return self.kept.get(key)

        def keep(self, key: str, result: str, status: str) -> None:
            self.kept[key] = (result, status)

    replies = iter([StepReply(calls=(("f", "{}", "c1"),), replayed=True), StepReply(text="done")])
    record = Memory()
    tools = {"f": FunctionTool.from_function(f)}
    loop = ToolLoop(lambda m, t: next(replies), tools, [{"role": "user", "content": "x"}], record=record)
    loop.advance(lambda call: "skip")
    assert loop.calls[0].status == "skipped" and record.kept == {}
    assert isinstance(CachedToolResults().recall("nothing"), type(None))


def test_a_pending_approval_saves_as_a_static_waiting_block(ip: InteractiveShell, pub: Any,
                                                            cloud_env: Any) -> None:
    from ipywidgets.widgets.widget import _instances

    exec("def file_ticket(title: str) -> str:\n    '''File a ticket.'''\n    return 'T-1'", ip.user_ns)
    _model(cloud_env)
    _run(ip, "")
    (outputs,) = [o for o in pub.by_display_id().values()
                  if "application/vnd.jupyter.widget-view+json" in o[-1]["data"]]
    saved = outputs[-1]["data"]  # what the notebook file keeps, and nbconvert exports without widgets
    assert saved["text/plain"].endswith('waiting for approval: file_ticket({"title": "printer on fire"})')
    assert "VBox(" not in saved["text/plain"] and "HTML(" not in saved["text/plain"]
    assert 'waiting for approval: file_ticket({"title": "printer on fire"})' in saved["text/html"]
    box = _instances[saved["application/vnd.jupyter.widget-view+json"]["model_id"]]
    box.children[1].children[1].click()  # Run
    final = next(o for o in pub.by_display_id().values()
                 if "application/vnd.jupyter.widget-view+json" in o[-1]["data"])[-1]["data"]
    assert "waiting for approval" not in final["text/plain"] and "Filed: T-1." in final["text/plain"]


@pytest.mark.slow
def test_restart_and_run_all_in_new_kernels_runs_a_yes_tool_zero_more_times(cloud_env: Any,
                                                                           tmp_path: Path) -> None:
    """The real thing: the notebook run three times, each in a new kernel process (what Restart &
    Run All does), its ``--yes`` tool appending a ticket to a file. The first run files it; the two
    runs after replay the model's answers and the tool's recorded result: 0 more tickets, 0 more
    model calls, and each replayed cell says so."""
    import nbformat
    from nbclient import NotebookClient

    tickets = tmp_path / "tickets.txt"
    define = ("%load_ext qfnb\nfrom pathlib import Path\n"
              f"TICKETS = Path({str(tickets)!r})\n"
              "def file_ticket(title: str) -> str:\n"
              "    '''File a ticket.'''\n"
              "    with TICKETS.open('a') as f:\n"
              "        f.write(title + '\\n')\n"
              "    return f'T-{len(TICKETS.read_text().splitlines())}'")
    asked = _model(cloud_env)
    shown = []
    for _ in range(3):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(define), nbformat.v4.new_code_cell(
            f"%%qfchat -m ERNIE-Bot --tools file_ticket --yes\n{CELL}")])
        NotebookClient(nb, timeout=300, kernel_name="python3").execute()
        shown.append("".join(str(o.get("data", {}).get("text/plain", "")) for o in nb.cells[1].outputs))
    assert tickets.read_text().splitlines() == ["printer on fire"] and len(asked) == 2
    assert "Filed: T-1." in shown[0] and "replayed" not in shown[0]
    assert all("↺ replayed its recorded result (not run again)" in s and "Filed: T-1." in s for s in shown[1:])


def test_the_loops_footer_and_badge_say_what_was_generated_and_what_replayed(ip: InteractiveShell, pub: Any,
                                                                              cloud_env: Any) -> None:
    def file_ticket(title: str) -> str:
        """File a ticket."""
        return "T-1"

    ip.user_ns["file_ticket"] = file_ticket
    _model(cloud_env)
    _run(ip, "--yes")
    text = _last_text(pub)  # two steps of 9 tokens each, both asked of the model
    assert "18 tokens (10 prompt + 8 completion)" in text and "2 calls generated 18 tokens" in text
    assert "replayed from the cache" not in text
    _run(ip, "--yes")  # Run All: both steps replay
    text, html = _last_text(pub), str(pub.outputs[-1]["data"]["text/html"])
    assert "↺ 2 replayed from the cache (18 tokens saved)" in text and "generated" not in text
    assert "18 tokens saved · --fresh to ask again" in text
    assert "↺ 2 replayed from the cache (18 tokens saved)" in html and "18 tokens saved ·" in html
