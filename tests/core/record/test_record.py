"""The record of calls: the response cache, the usage ledger, the budget and provenance."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import qfnb
from qfnb._core.http.recording.recorded import prompt_hash
from qfnb._core.record import cache as cache_mod
from qfnb._core.record import ledger as ledger_mod
from qfnb._core.record.budget import BudgetExceeded, budget
from qfnb._core.record.cache import ResponseCache, cache_key
from qfnb._core.record.ledger import Ledger, UsageRow
from qfnb._core.record.prices import prices

MSG = [{"role": "user", "content": "hi"}]


pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py


def _chat_calls(fake: Any) -> int:
    return len([r for r in fake.calls("/chat/") if r.method == "POST"])


def test_key_changes_with_everything_that_decides_an_answer() -> None:
    base = {"platform": "http://p", "route": "chat", "target": "ernie-speed-8k",
            "body": {"messages": MSG, "temperature": 0.5}}
    key = cache_key(**base)
    assert key == cache_key(**{**base, "target": "ERNIE-Speed-8K"})  # names are case-insensitive
    assert key == cache_key(**{**base, "body": {"temperature": 0.5, "messages": MSG}})  # order does not matter
    different = [
        {**base, "platform": "http://q"},
        {**base, "route": "completions"},
        {**base, "target": "ernie-4.0-8k"},
        {**base, "body": {"messages": MSG, "temperature": 0.6}},
        {**base, "body": {"messages": MSG, "temperature": 0.5, "seed": 7}},
        {**base, "body": {"messages": MSG, "temperature": 0.5, "system": "be brief"}},
        {**base, "version": "v2"},
        {**base, "repeat": 1},
    ]
    keys = {cache_key(**d) for d in different}
    assert key not in keys and len(keys) == len(different)


def test_off_by_default_in_the_sdk_so_drop_in_code_asks_every_time(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    chat.do(messages=MSG)
    chat.do(messages=MSG)
    assert _chat_calls(fake) == 2


def test_on_answers_identical_requests_from_the_cache_with_provenance(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config(cache=True))
    first = chat.do(messages=MSG, temperature=0.3)
    again = chat.do(messages=MSG, temperature=0.3)
    assert _chat_calls(fake) == 1
    assert again["result"] == first["result"] and again.body == first.body
    assert first.provenance["cache"] == {"hit": False} and again.provenance["cache"]["hit"] is True
    assert again.provenance["params"] == {"temperature": 0.3}
    assert again.provenance["prompt_hash"] == first.provenance["prompt_hash"]
    chat.do(messages=MSG, temperature=0.4)  # another temperature is a miss
    assert _chat_calls(fake) == 2


def test_provenance_is_of_what_was_sent_though_the_caller_edits_the_history_after(fake: Any,
                                                                                 make_config: Any) -> None:
    """Provenance is made on first read, from the bytes sent: the chat loop that appends the answer and the
    next question to its own ``messages`` before reading it still reads the first call's."""
    history = [{"role": "user", "content": "hi"}]
    chat = qfnb.ChatCompletion(config=make_config())
    first = chat.do(messages=history, temperature=0.3, stream=True)
    chunks = list(first)
    history += [{"role": "assistant", "content": "hello"}, {"role": "user", "content": "and then?"}]
    second = chat.do(messages=history, temperature=0.4)
    assert {c.provenance["prompt_hash"] for c in chunks} == {prompt_hash({"messages": MSG})}
    assert chunks[0].provenance is chunks[-1].provenance  # one record for the stream's chunks
    assert chunks[0].provenance["params"] == {"temperature": 0.3}
    assert second.provenance["prompt_hash"] == prompt_hash({"messages": history}) != chunks[0].provenance[
        "prompt_hash"]


def test_a_copied_or_pickled_answer_keeps_its_provenance_and_no_credential(fake: Any, make_config: Any) -> None:
    """Until it is read, provenance is a maker; a copy or a pickle of the answer holds the provenance itself,
    never the call's record (its config holds the keys)."""
    import copy
    import pickle

    cfg = make_config()
    unread = qfnb.ChatCompletion(config=cfg).do(messages=MSG, temperature=0.3)
    raw = pickle.dumps(unread._provenance)
    assert cfg.sk.encode() not in raw and b"Recording" not in raw
    assert pickle.loads(raw) == copy.deepcopy(unread)._provenance == unread.provenance
    assert unread.provenance["params"] == {"temperature": 0.3} and unread.provenance["prompt_hash"] == prompt_hash(
        {"messages": MSG})


def test_refresh_asks_again_and_stores_the_new_answer(fake: Any, make_config: Any) -> None:
    qfnb.ChatCompletion(config=make_config(cache=True)).do(messages=MSG)
    qfnb.ChatCompletion(config=make_config(cache="refresh")).do(messages=MSG)
    assert _chat_calls(fake) == 2
    qfnb.ChatCompletion(config=make_config(cache=True)).do(messages=MSG)
    assert _chat_calls(fake) == 2


def test_a_cached_stream_replays_as_the_same_chunks(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config(cache=True))
    first = [c.body for c in chat.do(messages=MSG, stream=True)]
    again = [c.body for c in chat.do(messages=MSG, stream=True)]
    assert len(first) > 1 and again == first
    assert _chat_calls(fake) == 1


def test_errors_are_never_stored(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config(cache=True, llm_api_retry_count=0))
    fake.fail_next(1, "code:336000")
    with pytest.raises(qfnb.errors.APIError):
        chat.do(messages=MSG)
    chat.do(messages=MSG)
    assert _chat_calls(fake) == 2


def test_a_cut_stream_is_never_stored(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config(cache=True, llm_api_retry_count=0))
    fake.cut_stream_after = 1
    with pytest.raises(qfnb.errors.QfnbError):
        list(chat.do(messages=MSG, stream=True))
    assert cache_mod.default_cache().stats().entries == 0
    fake.cut_stream_after = None
    list(chat.do(messages=MSG, stream=True))
    assert cache_mod.default_cache().stats().entries == 1


def test_the_size_bound_holds_least_recently_used_first(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite3", max_bytes=3_000)
    for i in range(20):
        cache.put(f"k{i}", "m", [{"result": "x" * 400, "i": i}], stream=False)
        if i >= 1:
            assert cache.get("k0") is not None or i > 5  # k0 stays while it is used
    stats = cache.stats()
    assert stats.bytes <= 3_000 and stats.entries < 20
    assert cache.get("k19") is not None
    assert stat.S_IMODE(os.stat(tmp_path / "c.sqlite3").st_mode) == 0o600


def _writer(path: str, start: int) -> None:
    cache = ResponseCache(Path(path))
    for i in range(start, start + 60):
        cache.put(f"key-{i}", "m", [{"result": f"answer {i}"}], stream=False)


def test_two_processes_write_at_once_without_corruption(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    ResponseCache(path).stats()  # create the schema first
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), n * 1000)) for n in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = ResponseCache(path)
    assert cache.stats().entries == 120
    hit = cache.get("key-1059")
    assert hit is not None and hit.bodies[0]["result"] == "answer 1059"


def test_invalidate_forgets_an_endpoints_answers(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config(cache=True))
    chat.do(messages=MSG)
    assert cache_mod.default_cache().invalidate(chat.do(messages=MSG).provenance["model"]) == 1
    chat.do(messages=MSG)
    assert _chat_calls(fake) == 2


def test_the_ledger_totals_equal_the_platforms_usage(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    answers = [chat.do(messages=[{"role": "user", "content": f"question {i}"}]) for i in range(5)]
    frame = ledger_mod.default_ledger().frame(session=ledger_mod.SESSION)
    assert len(frame) == 5
    assert frame["total_tokens"].sum() == sum(a["usage"]["total_tokens"] for a in answers)
    assert frame["prompt_tokens"].sum() == sum(a["usage"]["prompt_tokens"] for a in answers)
    assert not frame["cache_hit"].any()


def test_provenance_and_ledger_name_the_model_that_answered_beside_the_alias_asked(fake: Any,
                                                                                   make_config: Any) -> None:
    fake.inference_headers = {"X-Qfnb-Model": "Qwen2.5-0.5B-Instruct"}  # what the local platform sends
    chat = qfnb.ChatCompletion(config=make_config(cache=True))
    fresh = chat.do(model="ERNIE-Lite-8K", messages=MSG)
    fake.inference_headers = {}
    replayed = chat.do(model="ERNIE-Lite-8K", messages=MSG)  # from the cache: no header, same record
    assert _chat_calls(fake) == 1
    for answer in (fresh, replayed):
        assert answer.provenance["model"] == "Qwen2.5-0.5B-Instruct"
        assert answer.provenance["asked"].lower() == "ernie-lite-8k"
    rows = ledger_mod.default_ledger().rows(session=ledger_mod.SESSION)
    assert [(r.model, r.asked.lower(), r.cache_hit) for r in rows] == [
        ("Qwen2.5-0.5B-Instruct", "ernie-lite-8k", False), ("Qwen2.5-0.5B-Instruct", "ernie-lite-8k", True)]
    plain = chat.do(messages=[{"role": "user", "content": "no header"}])  # a platform that names none
    assert plain.provenance["model"] == plain.provenance["asked"]
    assert ledger_mod.default_ledger().rows(session=ledger_mod.SESSION)[-1].asked == ""


def test_a_ledger_file_from_before_the_asked_column_still_records(tmp_path: Path) -> None:
    import sqlite3
    path = tmp_path / "old.sqlite3"
    old_schema = ledger_mod._SCHEMA.replace("CREATE TABLE IF NOT EXISTS recorded_once (key TEXT PRIMARY KEY);", "")
    with sqlite3.connect(path) as db:
        db.executescript(old_schema)
    ledger = Ledger(path)
    ledger.record(UsageRow(api="chat", model="Tiny-Chat", asked="ernie-lite-8k", platform="local"))
    assert [(r.model, r.asked) for r in ledger.rows()] == [("Tiny-Chat", "ernie-lite-8k")]


def test_every_field_of_a_row_comes_back_from_the_file_as_recorded(tmp_path: Path) -> None:
    """The writer puts each field in its own column (the column list and the values are written out by
    hand, for speed): a row whose fields all differ comes back whole."""
    import dataclasses

    row = UsageRow(api="chat", model="m", platform="cloud", prompt_tokens=3, completion_tokens=5, total_tokens=8,
                   latency_s=0.25, retries=2, cache_hit=True, trained_tokens=13, ts=1234.5, session="s1", cell=21,
                   job="j", asked="alias", end_user="u", requests=34)
    assert sorted(ledger_mod._VALUE_ORDER) == sorted(f.name for f in dataclasses.fields(UsageRow))
    ledger = Ledger(tmp_path / "u.sqlite3")
    ledger.record(row)
    assert ledger.rows() == [row]


def test_recording_a_call_never_waits_for_the_file(tmp_path: Path) -> None:
    """A call's row is queued while the writer holds the file (a batch records thousands a second on its
    event loop); a read afterwards finds every row, stamped, in order."""
    import threading

    ledger = Ledger(tmp_path / "u.sqlite3")
    ledger.record(UsageRow(api="chat", model="first", platform="cloud"))
    recorded = threading.Event()

    def record() -> None:
        for i in range(3):
            ledger.record(UsageRow(api="chat", model=f"m{i}", platform="cloud", cache_hit=i == 1))
        recorded.set()

    with ledger._db_lock:  # the writer thread in the middle of a write
        threading.Thread(target=record).start()
        assert recorded.wait(10), "recording waited for the file"
    rows = ledger.rows()
    assert [(r.model, r.cache_hit, r.session) for r in rows] == [("first", False, ledger_mod.SESSION)] + [
        (f"m{i}", i == 1, ledger_mod.SESSION) for i in range(3)]
    assert all(r.ts > 0 for r in rows)


def test_the_ledger_marks_cell_and_prices_local_calls_at_zero(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "u.sqlite3")
    ledger_mod.set_cell(7)
    try:
        ledger.record(UsageRow(api="chat", model="ERNIE-4.0-8K", platform="cloud", prompt_tokens=1000,
                               completion_tokens=1000, total_tokens=2000))
        ledger.record(UsageRow(api="chat", model="Qwen2.5-Coder-0.5B-Instruct", platform="local",
                               prompt_tokens=1000, completion_tokens=0, total_tokens=1000))
    finally:
        ledger_mod.set_cell(None)
    frame = ledger.frame()
    assert list(frame["cell"]) == [7, 7]
    assert frame["cost_yuan"].iloc[0] == pytest.approx(0.03 + 0.09)
    assert frame["cost_yuan"].iloc[1] == 0.0
    twin = prices().models[prices().cloud_equivalent.lower()]
    assert frame["cloud_equivalent_yuan"].iloc[1] == pytest.approx(twin[0])


def test_the_budget_stops_a_batch_before_the_call_that_crosses_it(fake: Any, make_config: Any) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    used = chat.do(messages=MSG, max_output_tokens=20)["usage"]["total_tokens"]
    budget(tokens=used * 3 + 5)
    done = 0
    with pytest.raises(BudgetExceeded, match="token budget"):
        for _ in range(10):
            chat.do(messages=MSG, max_output_tokens=20)
            done += 1
    assert 1 <= done <= 3
    assert _chat_calls(fake) == 1 + done  # the refused call was never sent


def test_bad_budgets_are_refused() -> None:
    for bad in (-1, "5", True):
        with pytest.raises(ValueError, match="budget"):
            budget(tokens=bad)  # type: ignore[arg-type]


def test_provenance_never_holds_a_secret(fake: Any, make_config: Any) -> None:
    config = make_config()
    resp = qfnb.ChatCompletion(config=config).do(messages=MSG)
    text = json.dumps(resp.provenance)
    for secret in (config.ak, config.sk, config.access_key, config.secret_key):
        assert secret and secret not in text


def test_the_budget_stops_batch_do_at_the_right_row_and_keeps_the_rows_before(fake: Any, make_config: Any,
                                                                               tmp_path: Path) -> None:
    chat = qfnb.ChatCompletion(config=make_config())
    prompts = [[{"role": "user", "content": f"q{i:02d}"}] for i in range(12)]
    one = chat.do(messages=prompts[0], max_output_tokens=16)["usage"]["total_tokens"]
    budget(tokens=one * 5)
    results = chat.batch_do(prompts, worker_num=1, max_output_tokens=16,
                            output_file=str(tmp_path / "out.jsonl")).results()
    answered = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception) and "budget" in str(r)]
    assert 3 <= len(answered) <= 5 and len(answered) + len(refused) == 12
    assert all(not isinstance(r, Exception) for r in results[:len(answered)])  # in order: the first rows kept
    assert _chat_calls(fake) == 1 + len(answered)  # nothing past the line was sent
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert sum('"result"' in line for line in lines) >= len(answered)


def test_a_broken_ledger_or_cache_file_never_breaks_a_call_and_says_why(fake: Any, make_config: Any,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A disk that fails (full, an I/O error, a file that is not a database) costs the record, never
    the answer: the chat answers, the job's row is refused with a warning, the next call after a
    repair is recorded again."""
    data = Path(os.environ["QFNB_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    ledger_file, cache_file = data / ledger_mod.LEDGER_FILE, data / cache_mod.CACHE_FILE
    for broken in (ledger_file, cache_file):
        broken.write_bytes(b"this is not a database " * 64)
    chat = qfnb.ChatCompletion(config=make_config(cache=True))
    assert chat.do(messages=MSG)["result"]  # cache unreadable: a miss, then not stored
    assert chat.do(messages=MSG)["result"]
    assert _chat_calls(fake) == 2
    ledger = ledger_mod.default_ledger()
    assert ledger.record_once(UsageRow(api="batch", model="m", platform="local"), "job-1") is False
    ledger.flush()
    said = caplog.text
    assert "response cache: could not read an answer" in said and "could not store an answer" in said
    assert "usage ledger: could not record job-1 (file is not a database)" in said

    ledger.close()
    cache_mod._default.clear()
    ledger_mod._default.clear()
    for broken in (ledger_file, cache_file):
        broken.unlink()
    chat.do(messages=MSG)
    assert ledger_mod.default_ledger().record_once(UsageRow(api="batch", model="m", platform="local"), "job-1")
    assert [r.api for r in ledger_mod.default_ledger().rows()] == ["chat", "batch"]
