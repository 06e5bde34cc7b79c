"""``%qftrain --dataset local.jsonl --base <model> --deploy`` on a 2026 (v2) account: the magic in an
in-process IPython shell, its SDK calls going to the 2026 console double (IAM keys, no v1 app keys;
``QFNB_BOS_UPLOAD_PATH`` for the local file) over a socket, as a user's environment would send them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from qfnb._core.config import Config
from qfnb.notebook.errors import QfnbCellError
from tests.fakes.cloud import FakeQianfan
from tests.fakes.cloud_v2_console import ConsoleV2, install_console_v2
from tests.fakes.console_fixtures import FAST

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(4)]
KEY = "bce-v3/ALTAK-test/secret"  # the fake's bearer token: the account's v2 API key


@pytest.fixture
def v2_env(fake: FakeQianfan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ConsoleV2:
    """The SDK's environment as a 2026 account's: the IAM pair and the API key, no v1 app keys."""
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    env = {"QIANFAN_BASE_URL": fake.base_url, "QIANFAN_CONSOLE_API_BASE_URL": fake.base_url,
           "QIANFAN_IAM_BASE_URL": fake.base_url, "QIANFAN_ACCESS_KEY": fake.access_key,
           "QIANFAN_SECRET_KEY": fake.secret_key, "QIANFAN_API_KEY": KEY,
           "QFNB_BOS_ENDPOINT": fake.base_url + "/bos", "QFNB_BOS_UPLOAD_PATH": "bos:/my-bucket/qfnb/",
           **{f"QIANFAN_{k.upper()}": str(v) for k, v in FAST.items()}}
    for name in ("QIANFAN_AK", "QIANFAN_SK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Config.from_env().api_version == 2
    return install_console_v2(fake)


@pytest.mark.sockets
def test_qftrain_on_a_v2_account_trains_publishes_and_deploys_through_the_v2_calls(
        ip: InteractiveShell, v2_env: ConsoleV2, fake: FakeQianfan, tmp_path: Path) -> None:
    data = tmp_path / "local.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    ip.run_line_magic("qftrain", f"--dataset {data} --base ERNIE-Speed-8K --deploy --fresh -o dash")
    dash: Any = ip.user_ns["dash"]
    dash.wait(timeout=60)
    assert dash.state.status == "succeeded", dash.state.error
    seen = [s for s in v2_env.seen() if not s[0].startswith("/bos/")]
    assert not [p for p, _ in v2_env.seen() if p.startswith("/wenxinworkshop/")]
    actions = [a for _, a in seen]
    for needed in ("CreateDataset", "CreateImportTask", "PublishDatasetVersion", "CreateFineTuningJob",
                   "CreateFineTuningTask", "CreateCustomModelSet", "CreateCustomModel", "CreateService"):
        assert actions.count(needed) == 1, (needed, actions)
    order = [actions.index(a) for a in ("CreateDataset", "CreateFineTuningTask", "CreateCustomModel",
                                        "CreateService")]
    assert order == sorted(order)
    assert actions[-1] == "DescribeService"
    (job,) = v2_env.jobs.values()
    assert job["model"] == "ERNIE-Speed-8K"
    (service,) = v2_env.services.values()
    assert service["runStatus"] == "Serving"
    assert dash.trainer.output["service_endpoint"] == service["endpoint"]


def test_qftrain_without_base_on_a_v2_account_names_the_option_and_sends_nothing(
        ip: InteractiveShell, v2_env: ConsoleV2, fake: FakeQianfan, tmp_path: Path) -> None:
    from IPython.core.error import UsageError

    data = tmp_path / "local.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    with pytest.raises(UsageError, match="name the base model with --base"):
        ip.run_line_magic("qftrain", f"--dataset {data} --fresh")
    assert fake.requests == []


def test_qftrain_with_the_api_key_alone_is_refused_naming_the_iam_keys_and_starts_nothing(
        ip: InteractiveShell, v2_env: ConsoleV2, fake: FakeQianfan, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2026 account's key alone signs inference only: the fine-tune is refused on the line (not by a
    dashboard failing in the background), naming both keys, with the key itself nowhere in it."""
    from IPython.core.error import UsageError

    for name in ("QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY"):
        monkeypatch.delenv(name)
    data = tmp_path / "local.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    with pytest.raises(UsageError) as refused:
        ip.run_line_magic("qftrain", f"--dataset {data} --base ERNIE-Speed-8K --fresh -o dash")
    text = str(refused.value)
    assert text.startswith("%qftrain: fine-tuning calls the Qianfan console")
    assert "QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY are not set" in text
    assert KEY not in text and "ALTAK-test" not in text
    assert fake.requests == [] and "dash" not in ip.user_ns
    assert not ip.magics_manager.registry["QfnbMagics"].dashboards
    with pytest.raises(QfnbCellError, match="'local' runs on the embedded platform"):  # --target local: its own check
        ip.run_line_magic("qftrain", f"--dataset {data} --base ERNIE-Speed-8K --target local --fresh")


def test_the_launcher_form_with_the_api_key_alone_says_why_and_launches_nothing(
        ip: InteractiveShell, v2_env: ConsoleV2, fake: FakeQianfan, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``%qftrain`` with no recipe shows the form: with the key alone, the form says up front what the line
    refusal says (naming both IAM keys, the key itself nowhere), its Launch is off, and a click starts nothing."""
    for name in ("QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY"):
        monkeypatch.delenv(name)
    data = tmp_path / "local.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    ip.run_line_magic("qftrain", "-o form")
    form: Any = ip.user_ns["form"]
    form.dataset.value, form.base.value = str(data), "ERNIE-Speed-8K"
    shown = form.message.value
    assert "fine-tuning calls the Qianfan console" in shown
    assert "QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY are not set" in shown
    assert KEY not in shown and "ALTAK-test" not in shown
    assert form.launch_button.disabled
    form._clicked_launch()  # a click that reaches it anyway (a widget state restored from a saved notebook)
    assert "QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY are not set" in form.message.value
    assert form.dashboard is None
    assert not [a for _, a in v2_env.seen() if a], v2_env.seen()  # no console call: no data set, no fine-tune


def test_the_launcher_form_with_the_iam_keys_offers_launch(ip: InteractiveShell, v2_env: ConsoleV2) -> None:
    ip.run_line_magic("qftrain", "-o form")
    form: Any = ip.user_ns["form"]
    assert not form.launch_button.disabled and "QIANFAN_ACCESS_KEY" not in form.message.value
