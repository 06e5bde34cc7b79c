"""Where an interrupted job stands, read from its files: torn last lines, the dispatch journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qfnb.local.domain.batch_rows import RowError, answer_row, error_row, parse_line, standing


def test_standing_cuts_a_torn_line_and_counts_in_flight_rows(tmp_path: Path) -> None:
    out, err, journal = tmp_path / "out.jsonl", tmp_path / "err.jsonl", tmp_path / "journal.log"
    rows = [parse_line(json.dumps({"id": f"k{i}", "query": f"q{i}"}).encode(), i + 1, "m", {}) for i in range(6)]
    body = {"usage": {"prompt_tokens": 2, "completion_tokens": 3}}
    good = "".join(json.dumps(answer_row(r, f"r{r.line}", body)) + "\n" for r in (rows[0], rows[2]))
    out.write_text(good + json.dumps(answer_row(rows[3], "r4", body))[:40])  # killed mid-write
    err.write_text(json.dumps(error_row(2, "k1", "invalid_request", "line 2 ...")) + "\n")
    journal.write_text("1\n2\n3\n4\n5\n5\n")  # 4 and 5 were in flight; 5 noted twice
    state = standing(6, out, err, journal)
    assert out.read_text() == good  # the torn tail is cut, what was fsynced stays
    assert list(state.answered) == [1, 1, 1, 0, 0, 0]
    assert (state.done, state.failed, state.input_tokens, state.output_tokens, state.repeats) == (2, 1, 4, 6, 2)


def test_parse_line_shapes() -> None:
    openai = parse_line(json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": "x", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "max_tokens": 5, "temperature": 0.2}}).encode(), 1, None, {"top_p": 0.5})
    assert (openai.key, openai.model, openai.system, openai.messages) == ("a", "x", "be brief",
                                                                         [{"role": "user", "content": "hi"}])
    assert openai.params == {"top_p": 0.5, "max_output_tokens": 5, "temperature": 0.2}
    qianfan = parse_line(b'{"id": 7, "query": "hello"}', 2, "m", {})
    assert (qianfan.key, qianfan.model, qianfan.messages) == ("7", "m", [{"role": "user", "content": "hello"}])
    dataset = parse_line(b'[{"prompt": "p", "response": [["r"]]}]', 3, "m", {})
    assert (dataset.key, dataset.messages[0]["content"]) == ("line-3", "p")


def test_a_field_a_batch_does_not_carry_is_refused_by_name_and_openai_rows_take_openai_ranges() -> None:
    def openai_row(**body: object) -> bytes:
        return json.dumps({"custom_id": "k", "method": "POST", "url": "/v1/chat/completions",
                           "body": {"model": "x", "messages": [{"role": "user", "content": "hi"}], **body}}).encode()

    for field, value in (("tools", [{"type": "function", "function": {"name": "f"}}]),
                         ("response_format", {"type": "json_object"}), ("n", 2)):
        with pytest.raises(RowError, match=f"line 1: {field}: is not supported in a batch row"):
            parse_line(openai_row(**{field: value}), 1, None, {})
    # OpenAI's temperature 0 (greedy) is an OpenAI row's right; a Qianfan row keeps Qianfan's range
    assert parse_line(openai_row(temperature=0), 1, None, {}).params == {"temperature": 0}
    with pytest.raises(RowError, match="line 2: temperature"):
        parse_line(b'{"query": "hi", "temperature": 0}', 2, "m", {})
    with pytest.raises(RowError, match="line 1: temperature"):
        parse_line(openai_row(temperature=5), 1, None, {})
