"""Where an interrupted job stands, read from its files: torn last lines, the dispatch journal."""

from __future__ import annotations

import json
from pathlib import Path

from qfnb.local.domain.batch_rows import answer_row, error_row, parse_line, standing


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
