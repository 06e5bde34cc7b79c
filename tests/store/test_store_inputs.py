"""What ``qfnb models add`` hands the store is checked (issue 34 §4): a template must be a chat
template that renders, a name served already (an ``--engine`` / ``QFNB_ENGINES`` engine, a bundled
model) cannot be taken, and engine URLs at link-local or cloud metadata addresses are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfnb.cli import main
from qfnb.local.engines.options import parse_external
from qfnb.local.engines.store.model_check import NotAModel
from qfnb.local.engines.store.model_store import ModelStore
from qfnb.local.engines.store.store_inputs import StoreInputError, check_engine_url, check_template
from qfnb.local.server.routes.daemon.models_control import _add_options, served_elsewhere
from tests.fakes.local_platform import served_platform
from tests.store.test_model_store import tiny_gguf

CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}" \
                "{% if add_generation_prompt %}<|assistant|>{% endif %}"
PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def test_a_template_must_render_a_conversation(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    src = tiny_gguf(tmp_path / "m.gguf")
    for text, words in ((PASSWD, "not a chat template"), ("{{ messages[", "does not render|renders"),
                        ("{% for m in messages %}{{ m.content.nope() }}{% endfor %}", "render"),
                        ("{{ raise_exception('no') }}", "renders"), ("x" * 300_000, "at most"), ("  ", "text")):
        with pytest.raises(NotAModel, match=words):
            store.add(src, "t", template=text)
    assert store.models() == []
    assert store.add(src, "t", template=CHAT_TEMPLATE).template == CHAT_TEMPLATE


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://169.254.1.1:8000/v1",
                                 "http://[fd00:ec2::254]/v1", "http://[fe80::1]:8000/v1",
                                 "http://[::ffff:169.254.169.254]/v1", "http://metadata.google.internal/v1",
                                 "http://100.100.100.200/latest", "http://0.0.0.0:8000/v1", "ftp://host/v1"])
def test_engine_urls_at_metadata_or_link_local_addresses_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(NotAModel, match="engine URL"):
        ModelStore(tmp_path / "store").add(None, "remote", engine_url=url)
    with pytest.raises(ValueError, match="QFNB_ENGINES"):
        parse_external({"remote": url})


def test_ordinary_engine_urls_are_kept(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    for i, url in enumerate(("http://127.0.0.1:8000/v1", "https://gpu-box:8443/v1", "http://10.0.0.5/v1")):
        assert store.add(None, f"e{i}", engine_url=url).engine_url == url.rstrip("/")
    assert parse_external({"x": "http://192.168.1.9:8000/v1"})["x"].base_url == "http://192.168.1.9:8000/v1"


def test_a_served_name_cannot_be_taken(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    with served_platform(tmp_path / "data") as served:
        platform = served.app.state.platform
        assert "already served" in str(served_elsewhere(platform, store, "Tiny-Chat"))
        assert served_elsewhere(platform, store, "brand-new") is None


def test_the_cli_refuses_a_non_template_and_a_name_an_engine_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QFNB_MODEL_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("QFNB_ENGINES", json.dumps({"remote-box": "http://127.0.0.1:9/v1"}))
    data = str(tmp_path / "data")
    src = tiny_gguf(tmp_path / "tiny.gguf")
    passwd = tmp_path / "passwd"
    passwd.write_text(PASSWD)
    try:
        assert main(["models", "add", str(src), "--name", "t", "--template", str(passwd), "--data-dir", data]) == 1
        assert "not a chat template" in capsys.readouterr().err
        assert main(["models", "add", str(src), "--name", "Remote-Box", "--data-dir", data]) == 1
        err = capsys.readouterr().err
        assert "already served" in err and "Traceback" not in err
        assert main(["models", "add", "--engine", "http://169.254.169.254/v1", "--name", "m", "--data-dir",
                     data]) == 1
        assert "link-local" in capsys.readouterr().err
    finally:
        main(["stop", "--data-dir", data])


@settings(max_examples=200, deadline=None)
@given(url=st.one_of(st.text(max_size=60), st.from_regex(r"https?://[\[\]0-9a-fA-F:.a-z%-]{0,40}(/[a-z0-9]*)?",
                                                         fullmatch=True)))
def test_any_engine_url_is_kept_or_refused_in_a_sentence(url: str) -> None:
    try:
        assert check_engine_url(url) == url
    except StoreInputError as exc:
        assert str(exc).startswith("engine URL") and "Traceback" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(max_size=200), st.from_regex(r"\{[{%][^}]{0,40}[%}]\}", fullmatch=True)))
def test_any_template_text_is_kept_or_refused_in_a_sentence(text: str) -> None:
    try:
        assert check_template(text) == text
    except StoreInputError as exc:
        assert str(exc).startswith("template")


@settings(max_examples=200, deadline=None)
@given(body=st.dictionaries(st.sampled_from(["roles", "ctx", "keep_alive", "template", "engine", "name", "path"]),
                            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
                                      st.lists(st.text(max_size=5), max_size=3)), max_size=7))
def test_any_add_request_options_are_checked_in_a_sentence(body: dict[str, object]) -> None:
    try:
        _add_options(body)
    except ValueError as exc:
        assert str(exc).split(" ", 1)[0] in ("roles", "ctx", "keep_alive", "template", "engine"), exc
