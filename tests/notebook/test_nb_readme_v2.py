"""README "A taste" on the cloud of 2026: the chat blocks, pasted in order into a fresh IPython shell,
run with a v2 API key alone against the 2026 cloud double, as they run offline; no v1 route is used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.http import client as client_mod
from tests.fakes.cloud_v2 import FakeQianfanV2
from tests.fakes.cloud_v2_console import install_console_v2
from tests.fakes.console_fixtures import FAST
from tests.fakes.fixtures_v2 import key_only_env
from tests.notebook.test_nb_readme import taste_snippets


@pytest.mark.sockets
@pytest.mark.usefixtures("own_record_dir")  # a run's shared cache may hold "What is LoRA?" (test_nb_v2_account)
def test_readme_chat_blocks_run_with_the_key_alone(ip: Any, cloud_v2: FakeQianfanV2, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("QIANFAN_")]:
        monkeypatch.delenv(name)
    for name, value in key_only_env(cloud_v2).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    client_mod._CLIENTS.clear()
    chat_blocks = taste_snippets()[:3]  # the fourth fine-tunes: console calls need IAM keys (docs/lifecycle.md)
    for i, code in enumerate(chat_blocks):
        result = ip.run_cell(code)
        assert result.success, f"README snippet {i + 1} failed: {result.error_in_exec or result.error_before_exec}"
    assert (tmp_path / "answers.jsonl").read_text(encoding="utf-8").count("\n") == 3
    chats = cloud_v2.calls("/v2/chat/completions")
    assert len(chats) == 1 + 1 + 3 + 1  # do, stream, the batch's three, %%qfchat
    assert any("Explain LoRA fine-tuning in two sentences" in str(c.json) and '{"summary": "..."}' in str(c.json)
               for c in chats)
    assert cloud_v2.v1_calls() == [] and {c.json["model"] for c in chats} == {"ernie-4.5-turbo-128k"}
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
