"""The official SDK's DotEnv settings: ``.env`` in the working directory (or the file
``QIANFAN_DOT_ENV_CONFIG_FILE`` names) is read under the process environment (official
``config_test::test_read_from_dot_env``; docs/configurable.md of the official repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qfnb import get_config
from qfnb._core.config import Config
from qfnb._core.env import DOT_ENV_VAR, dotenv_values


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("QIANFAN_")]:
        monkeypatch.delenv(name)
    return tmp_path


def test_a_dotenv_file_in_the_working_directory_configures_the_sdk(workdir: Path) -> None:
    (workdir / ".env").write_text('QIANFAN_ACCESS_TOKEN="test_token"\nQIANFAN_QPS_LIMIT=3\n', encoding="utf-8")
    assert get_config().ACCESS_TOKEN == "test_token"
    config = Config.from_env()
    assert (config.access_token, config.qps_limit) == ("test_token", 3.0)


def test_the_process_environment_wins_over_the_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / ".env").write_text("QIANFAN_AK=from_file\nQIANFAN_SK=file_sk\n", encoding="utf-8")
    monkeypatch.setenv("QIANFAN_AK", "from_env")
    config = Config.from_env()
    assert (config.ak, config.sk) == ("from_env", "file_sk")


def test_the_named_file_is_read_instead_and_a_changed_file_is_read_again(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / ".env").write_text("QIANFAN_AK=default_file\n", encoding="utf-8")
    named = workdir / "conf" / "qianfan.env"
    named.parent.mkdir()
    named.write_text("QIANFAN_AK=named_file\n", encoding="utf-8")
    monkeypatch.setenv(DOT_ENV_VAR, str(named))
    assert Config.from_env().ak == "named_file"
    named.write_text("QIANFAN_AK=edited_file\n", encoding="utf-8")
    assert Config.from_env().ak == "edited_file"


def test_without_a_file_or_with_a_folder_named_dotenv_nothing_is_set(workdir: Path) -> None:
    assert Config.from_env().access_token is None
    (workdir / ".env").mkdir()  # a virtualenv called .env
    (workdir / ".env" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    assert Config.from_env().access_token is None
    assert dotenv_values(workdir / ".env") == {}


def test_dotenv_lines_as_the_usual_files_write_them(tmp_path: Path) -> None:
    file = tmp_path / "settings.env"
    file.write_text("\n".join([
        "# a comment", "", "export QIANFAN_AK=exported", "QIANFAN_SK = spaced  # trailing comment",
        "QIANFAN_ACCESS_TOKEN='single # kept'", 'QIANFAN_BASE_URL="http://a\\tb\\"c\\d"', "no equals sign",
    ]), encoding="utf-8")
    assert dotenv_values(file) == {"QIANFAN_AK": "exported", "QIANFAN_SK": "spaced",
                                   "QIANFAN_ACCESS_TOKEN": "single # kept",
                                   "QIANFAN_BASE_URL": 'http://a\tb"c\\d'}
