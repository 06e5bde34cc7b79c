"""README on the cloud of 2026: every block a notebook runs, pasted in order into a fresh IPython shell,
run with a v2 API key alone against the 2026 cloud double; no v1 route is used, the key is shown
nowhere, and the fine-tune block (console calls) runs once the account's IAM keys are set too."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.errors import AuthError
from qfnb._core.http import client as client_mod
from qfnb._core.record.budget import clear_budget
from tests.fakes.cloud_v2 import FakeQianfanV2
from tests.fakes.cloud_v2_console import install_console_v2
from tests.fakes.console_fixtures import FAST
from tests.fakes.fixtures_v2 import key_only_env
from tests.notebook.test_nb_readme import ROOT, taste_snippets

log = logging.getLogger("qfnb.tests.readme_v2")


def notebook_blocks() -> list[str]:
    """Every README block a notebook runs (```python and the bare ``` ones: magics), in order."""
    blocks: list[str] = []
    lines: list[str] | None = None
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.strip().startswith("```"):
            if lines is not None:
                lines.append(line)
        elif lines is None:
            lines, runs = [], line.strip()[3:] in ("python", "")
        else:
            if runs:
                blocks.append("\n".join(lines))
            lines = None
    return blocks


def _secret_in(text: str, key: str) -> bool:
    return key in text or key.split("/")[-1] in text


@pytest.mark.sockets
@pytest.mark.usefixtures("own_record_dir")  # a run's shared cache may hold "What is LoRA?" (test_nb_v2_account)
def test_every_readme_notebook_block_with_the_key_alone(ip: Any, cloud_v2: FakeQianfanV2, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture,
                                                        capsys: pytest.CaptureFixture[str],
                                                        request: pytest.FixtureRequest) -> None:
    """Each block pasted in order: the chat blocks answer through /v2/chat/completions, the fine-tune
    block is refused by name before anything is sent (console calls need the IAM keys), the
    ``%qfusage`` block runs as written (its ``# ...`` notes included), the search block embeds
    through /v2/embeddings; no v1 route, and the key in no output, log line, repr or file."""
    request.addfinalizer(clear_budget)  # the usage block sets a ¥5 budget on this process
    caplog.set_level(logging.DEBUG)
    for name in [n for n in os.environ if n.startswith("QIANFAN_")]:
        monkeypatch.delenv(name)
    for name, value in key_only_env(cloud_v2).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    client_mod._CLIENTS.clear()
    blocks = notebook_blocks()
    assert [b.strip() for b in blocks[:4]] == [t.strip() for t in taste_snippets()], blocks
    assert len(blocks) == 6, [b.splitlines()[0] for b in blocks]
    routes, outcomes = [], []
    for code in blocks:
        seen = len(cloud_v2.requests)
        result = ip.run_cell(code)
        routes.append(sorted({f"{r.method} {r.path}" for r in cloud_v2.requests[seen:]}))
        outcomes.append(result.error_in_exec or result.error_before_exec)
    log.warning("README blocks with a v2 key alone:\n%s", "\n".join(
        f"  {b.splitlines()[0]!r}: {r} -> {type(o).__name__ if o else 'ok'}"
        for b, r, o in zip(blocks, routes, outcomes, strict=True)))
    chat, load, qfchat, fine_tune, usage_block, search = range(6)
    assert [i for i, o in enumerate(outcomes) if o is not None] == [fine_tune], outcomes
    assert isinstance(outcomes[fine_tune], AuthError) and "IAM keys" in str(outcomes[fine_tune])
    assert routes[fine_tune] == [] and routes[load] == [] and routes[usage_block] == []
    assert routes[chat] == routes[qfchat] == ["POST /v2/chat/completions"]
    assert routes[search] == ["POST /v2/embeddings"]
    assert (tmp_path / "answers.jsonl").read_text(encoding="utf-8").count("\n") == 3
    chats = cloud_v2.calls("/v2/chat/completions")
    assert len(chats) == 1 + 1 + 3 + 1  # do, stream, the batch's three, %%qfchat
    assert any("Explain LoRA fine-tuning in two sentences" in str(c.json) and '{"summary": "..."}' in str(c.json)
               for c in chats)
    assert cloud_v2.v1_calls() == [] and {c.json["model"] for c in chats} == {"ernie-4.5-turbo-128k"}
    assert {c.json["model"] for c in cloud_v2.calls("/v2/embeddings")} == {"bge-large-zh"}
    assert "How long does a refund take? -> 退款" in capsys.readouterr().out
    key = cloud_v2.key
    shown = [str(o["data"]) for o in ip.display_pub.outputs] + [str(outcomes[fine_tune])]
    assert not [s for s in shown if _secret_in(s, key)]
    assert not [r.getMessage() for r in caplog.records if _secret_in(r.getMessage(), key)]
    assert not [k for k, v in ip.user_ns.items() if not k.startswith("_") and _secret_in(repr(v), key)]
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and key.split("/")[-1].encode() in p.read_bytes()]
    client_mod._CLIENTS.clear()


@pytest.mark.sockets
def test_readme_fine_tune_block_runs_with_the_account_iam_keys(ip: Any, cloud_v2: FakeQianfanV2, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The fourth block as written, on a 2026 account: the key plus the IAM keys and an upload path
    (console calls are signed with IAM keys); every call a v2 one."""
    for name in [n for n in os.environ if n.startswith("QIANFAN_")]:
        monkeypatch.delenv(name)
    env = {**key_only_env(cloud_v2), "QIANFAN_ACCESS_KEY": cloud_v2.access_key,
           "QIANFAN_SECRET_KEY": cloud_v2.secret_key, "QFNB_BOS_ENDPOINT": cloud_v2.base_url + "/bos",
           "QFNB_BOS_UPLOAD_PATH": "bos:/my-bucket/qfnb/", **{f"QIANFAN_{k.upper()}": str(v) for k, v in FAST.items()}}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    console = install_console_v2(cloud_v2)
    client_mod._CLIENTS.clear()
    result = ip.run_cell(taste_snippets()[3])
    assert result.success, result.error_in_exec or result.error_before_exec
    assert ip.user_ns["trainer"].output["service_endpoint"]
    actions = [a for _, a in console.seen()]
    assert {"CreateFineTuningTask", "CreateCustomModel", "CreateService"} <= set(actions)
    assert not [p for p, _ in console.seen() if p.startswith("/wenxinworkshop/")] and cloud_v2.v1_calls() == []
    client_mod._CLIENTS.clear()
