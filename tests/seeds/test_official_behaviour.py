"""Behaviours the official SDK's own tests check, pinned in qfnb's suite (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

import qfnb
from qfnb._core.config import Config
from qfnb.dataset import Dataset, FileDataSource, FormatType
from qfnb.errors import InvalidArgumentError, RequestError, ValidationError
from qfnb.model import Model
from qfnb.resources import Tokenizer
from qfnb.resources.inference.shapes.function_call import parse_call, render
from qfnb.resources.inference.targets import resolve_target
from qfnb.trainer import TrainConfig, TrainLimit


def test_endpoint_wins_and_completion_routes_a_chat_models_endpoint_under_chat() -> None:
    assert resolve_target(("chat",), "ERNIE-Bot", "my_ep", default_model=None, services=None).endpoint == "my_ep"
    target = resolve_target(("completions", "chat"), "ERNIE-Bot", "ep", default_model=None, services=None)
    assert (target.api_type, target.endpoint) == ("chat", "ep")
    target = resolve_target(("completions", "chat"), "nope", "ep", default_model=None, services=None)
    assert target.api_type == "completions"


def test_get_config_is_settable_and_none_unsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_AK", "env_ak")
    monkeypatch.setattr(qfnb.config, "_GLOBAL_CONFIG", None)
    qfnb.get_config().AUTH_TIMEOUT = 9
    assert Config.from_env().auth_timeout == 9 and qfnb.get_config().ak == "env_ak"
    qfnb.AK(None)
    assert Config.from_env().ak is None
    qfnb.config._GLOBAL_CONFIG = None
    assert Config.from_env().ak == "env_ak"
    assert Config.from_env(ssl=False, key="bucket").ssl_verification_enabled is False


def test_official_except_clauses_catch_qfnb_errors() -> None:
    err = ValidationError("x", "bad")
    assert isinstance(err, InvalidArgumentError) and isinstance(err, ValueError)
    assert issubclass(qfnb.errors.APIError, RequestError)


def test_local_token_count_is_the_official_estimate() -> None:
    for text, count in [("hello world 1 2 3", 5), ("你好呀", 1), (" 你好 123 哈哈1！  \t 123 Hello world", 7)]:
        assert Tokenizer.count_tokens(text, mode="local") == count


def test_model_positional_order_is_set_then_version() -> None:
    m = Model("17000", "12333")
    assert (m.set_id, m.id, m.version_id) == ("17000", "12333", "12333")
    with pytest.raises(ValidationError):
        Model(id="1", version_id="2")


def test_train_limits() -> None:
    merged = TrainLimit(epoch_limit=(1, 3)) | TrainLimit(batch_size_limit=(1, 4), epoch_limit=(1, 2))
    assert (merged.epoch_limit, merged.batch_size_limit) == ((1, 3), (1, 4))
    conf = TrainConfig(epoch=4, batch_size=4, max_seq_len=4096)
    assert not conf.validate_config(TrainLimit(epoch=(1, 2)))
    assert conf.validate_config(TrainLimit(epoch=(1, 8), max_seq_len=[2048, 4096]))


def test_file_data_source_round_trip(tmp_path: Path) -> None:
    assert FileDataSource(path=str(tmp_path / "a.jsonl")).format_type() is FormatType.Jsonl
    with pytest.raises(ValueError, match="ddl"):
        FileDataSource(path="x.ddl")
    src = FileDataSource(path=str(tmp_path / "rows.jsonl"))
    Dataset.create_from_pyobj([{"prompt": "p", "response": "r"}]).save(src)
    assert (tmp_path / "rows.jsonl").read_text(encoding="utf-8") == '{"prompt": "p", "response": "r"}\n'
    assert Dataset.load(src).list() == [{"prompt": "p", "response": "r"}]


def test_dataset_column_calls() -> None:
    ds = Dataset.create_from_pyobj([{"a": 1}, {"a": 2}])
    ds.col_insert({"name": "b", "data": [3, 4]}, 0)
    assert ds.to_pydict() == {"b": [3, 4], "a": [1, 2]}
    with pytest.raises(ValidationError):
        ds.append(["not a dict"])


def test_function_calls_go_through_action_lines() -> None:
    turns = render([{"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": "", "function_call": {"name": "w", "arguments": "{}"}},
                    {"role": "function", "content": "25"}], [{"name": "w", "description": "d", "parameters": {}}])
    assert "weather?" in turns[0]["content"] and turns[1]["content"] == "Action: w\nAction Input: {}"
    assert turns[2] == {"role": "user", "content": "25"}
    resp = parse_call(qfnb.QfResponse(200, {}, {"result": 'Action: w\nAction Input: {"a": 1}'}), 'Action: w\n'
                      'Action Input: {"a": 1}')
    assert resp["function_call"] == {"name": "w", "arguments": '{"a": 1}'} and resp["result"] == ""
