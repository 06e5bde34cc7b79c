"""Where an interrupted job stands, read from its files: torn last lines, the dispatch journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.domain.batch.rows import RowError, answer_row, error_row, journal_entry, parse_line, standing


def test_standing_cuts_a_torn_line_and_counts_in_flight_rows(tmp_path: Path) -> None:
    out, err, journal = tmp_path / "out.jsonl", tmp_path / "err.jsonl", tmp_path / "journal.log"
    rows = [parse_line(json.dumps({"id": f"k{i}", "query": f"q{i}"}).encode(), i + 1, "m", {}) for i in range(6)]
    body = {"usage": {"prompt_tokens": 2, "completion_tokens": 3}}
    good = "".join(json.dumps(answer_row(r, f"r{r.line}", body)) + "\n" for r in (rows[0], rows[2]))
    out.write_text(good + json.dumps(answer_row(rows[3], "r4", body))[:40])  # killed mid-write
    err.write_text(json.dumps(error_row(2, "k1", "invalid_request", "line 2 ...")) + "\n")
    journal.write_text("1\n2\n3\n4\n+4\n5\n5\n+5\n6\n")  # 4 and 5 were in flight (5 noted twice), 6 about to be sent
    state = standing(6, out, err, journal)
    assert out.read_text() == good  # the torn tail is cut, what was fsynced stays
    assert list(state.answered) == [1, 1, 1, 0, 0, 0]
    assert (state.progress.done, state.progress.failed, state.progress.input_tokens, state.progress.output_tokens,
            state.repeats) == (2, 1, 4, 6, 3)
    assert (state.unconfirmed, sorted(state.lost)) == (1, [4, 5])  # 6's request may not have left: not paid


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


def test_sends_lost_to_two_kills_are_paid_once_each_and_a_reread_adds_nothing(tmp_path: Path) -> None:
    out, err, journal, lost = (tmp_path / n for n in ("out.jsonl", "err.jsonl", "journal.log", "lost.log"))
    rows = [parse_line(json.dumps({"id": f"k{i}", "query": f"q{i}", "max_output_tokens": 50 + i}).encode(), i + 1,
                       "m", {}) for i in range(4)]
    assert [r.cap for r in rows] == [50, 51, 52, 53]

    def answered(row: Any, prompt: int) -> str:
        body = {"model": "m", "usage": {"prompt_tokens": prompt, "completion_tokens": 3}}
        return json.dumps(answer_row(row, f"r{row.line}", body)) + "\n"

    out.write_text(answered(rows[0], 7))
    journal.write_bytes(b"".join(journal_entry(r.line, r.cap) + b"+%d\n" % r.line for r in rows[:3]))  # 2, 3 in flight
    first = standing(4, out, err, journal, lost)
    assert first.lost == {2: [51], 3: [52]} and first.repeats == 2
    journal.write_bytes(journal_entry(2, 51) + b"+2\n" + journal_entry(4, 53) + b"+4\n")  # run 2: 2 lost again, 4 too
    out.write_text(answered(rows[0], 7) + answered(rows[2], 9))  # row 3 was answered in run 2
    second = standing(4, out, err, journal, lost)
    assert second.lost == {2: [51, 51], 4: [53]}
    assert (second.progress.repeated_requests, second.progress.repeat_input_tokens,
            second.progress.repeat_output_tokens) == (4, 9, 52)
    err.write_text(json.dumps(error_row(2, "k1", "invalid_request", "line 2")) + "\n")
    out.write_text(answered(rows[0], 7) + answered(rows[2], 9) + answered(rows[3], 11))
    journal.write_bytes(b"")  # run 3 ended every row: nothing in flight
    third = standing(4, out, err, journal, lost)
    again = standing(4, out, err, journal, lost)  # read twice (a restart that did nothing): nothing counted twice
    for state in (third, again):
        assert state.lost == {}
        assert (state.progress.repeated_requests, state.progress.repeat_input_tokens,
                state.progress.repeat_output_tokens) == (
            4, 9 + 11, 52 + 53 + 51 + 51)
        # per model: 3 answers and 2 of the lost sends (rows 3 and 4); row 2's two lost sends ended in an error
        assert state.progress.by_model == {"m": [5, 7 + 9 + 11 + 9 + 11, 9 + 52 + 53], "": [2, 0, 102]}


def test_a_sending_taken_back_is_not_in_flight(tmp_path: Path) -> None:
    out, err, journal, lost = (tmp_path / n for n in ("out.jsonl", "err.jsonl", "journal.log", "lost.log"))
    # row 1 never reached the engine (taken back, then sent again: in flight); row 2 taken back for good
    journal.write_bytes(journal_entry(1, 9) + b"-1\n" + journal_entry(2, 9) + b"+2\n" + journal_entry(1, 9) + b"+1\n"
                        + b"-2\n")
    state = standing(2, out, err, journal, lost)
    assert (state.repeats, state.lost) == (1, {1: [9]})
    journal.write_bytes(journal_entry(1, 9) + b"+1\n" + journal_entry(1, 9))  # sent again, not yet confirmed
    assert standing(2, out, err, journal, tmp_path / "other.log").lost == {}
