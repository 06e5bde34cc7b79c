"""README "A taste" on the cloud of 2026: the chat blocks, pasted in order into a fresh IPython shell,
run with a v2 API key alone against the 2026 cloud double, as they run offline; no v1 route is used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from qfnb._core.http import client as client_mod
from tests.fakes.cloud_v2 import FakeQianfanV2
from tests.fakes.fixtures_v2 import key_only_env
from tests.notebook.test_nb_readme import taste_snippets


@pytest.mark.sockets
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
