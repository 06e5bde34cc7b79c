"""``%qfcache`` and ``%qfusage`` in a shell with the extension loaded."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import qfnb
from qfnb import usage
from qfnb.notebook.chat.answer import cached_badge
from qfnb.notebook.ledger.usage import parse_budget

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fake_in_process() -> bool:
    return True


pytestmark = pytest.mark.usefixtures("own_record_dir")  # tests/conftest.py


def test_loading_the_extension_turns_the_cache_on_and_qfcache_off_turns_it_off(
        ip: InteractiveShell, fake: Any, make_config: Any) -> None:
    assert usage.cache() == "on"
    chat = qfnb.ChatCompletion(config=make_config())
    chat.do(messages=MSG)
    again = chat.do(messages=MSG)
    assert again.provenance["cache"]["hit"] is True and len(fake.calls("/chat/")) == 1
    ip.run_line_magic("qfcache", "off")
    chat.do(messages=MSG)
    assert len(fake.calls("/chat/")) == 2
    ip.run_line_magic("qfcache", "on")
    ip.run_line_magic("qfcache", "clear")
    chat.do(messages=MSG)
    assert len(fake.calls("/chat/")) == 3
    with pytest.raises(UsageError, match="on, off, clear or stats"):
        ip.run_line_magic("qfcache", "sometimes")


def test_qfusage_groups_this_sessions_calls_with_their_cell(ip: InteractiveShell, fake: Any,
                                                            make_config: Any) -> None:
    ip.user_ns["chat"] = qfnb.ChatCompletion(config=make_config())
    first = ip.run_cell("r1 = chat.do(messages=[{'role': 'user', 'content': 'one'}])", store_history=True)
    second = ip.run_cell("r2 = chat.do(messages=[{'role': 'user', 'content': 'two'}])\n"
                         "r3 = chat.do(messages=[{'role': 'user', 'content': 'two'}])", store_history=True)
    by_cell = ip.run_line_magic("qfusage", "--by cell")
    # the rows land under the In[n] the front end shows (IPython 9 counts a cell before pre_run_cell)
    assert list(by_cell.index) == [first.execution_count, second.execution_count]
    assert list(by_cell["calls"]) == [1, 1]  # the replayed r3 is no call: a replayed notebook adds none
    assert list(by_cell["cache_hits"]) == [0, 1]
    # the replayed r3 counts once, as saved: not also among the tokens spent
    spent = sum(ip.user_ns[r]["usage"]["total_tokens"] for r in ("r1", "r2"))
    assert by_cell["total_tokens"].sum() == spent
    assert by_cell["saved_tokens"].sum() == ip.user_ns["r3"]["usage"]["total_tokens"] > 0
    assert list(by_cell["reused"]) == [0, 0]  # no answer came from an evaluation's store
    shown = "".join(str(o["data"]) for o in ip.display_pub.outputs)  # type: ignore[attr-defined]
    assert "this kernel session · --all for everything" in shown
    assert "2 calls generated" in shown and "↺ 1 replayed from the cache" in shown  # as a bar says it


def test_one_display_name_per_model_across_spellings(ip: InteractiveShell) -> None:
    from qfnb._core.record.ledger import SESSION, UsageRow, default_ledger

    for model in ("Gemma-3-270M", "gemma_3_270m", "all-MiniLM-L6-v2"):
        default_ledger().record(UsageRow(api="chat", model=model, platform="local", prompt_tokens=3,
                                         completion_tokens=2, total_tokens=5, latency_s=0.1))
    by_model = usage.summary(by="model", session=SESSION)
    assert list(by_model.index) == ["Gemma-3-270M", "all-MiniLM-L6-v2"]
    assert list(by_model["calls"]) == [2, 1]


def test_qfusage_budget_and_its_spellings(ip: InteractiveShell) -> None:
    assert parse_budget("¥5") == {"yuan": 5.0}
    assert parse_budget("2.5yuan") == {"yuan": 2.5}
    assert parse_budget("20000 tokens") == {"tokens": 20000}
    ip.run_line_magic("qfusage", "--budget 1000tokens")
    assert usage.active_budget() is not None and usage.active_budget().tokens == 1000  # type: ignore[union-attr]
    ip.run_line_magic("qfusage", "--budget off")
    assert usage.active_budget() is None
    with pytest.raises(UsageError, match="--budget"):
        ip.run_line_magic("qfusage", "--budget lots")


def test_a_note_after_the_words_is_not_read_as_options(ip: InteractiveShell, capsys: Any) -> None:
    """The README's lines, as written: ``%qfusage --budget ¥5   # a call that would cross it ...``."""
    ip.run_line_magic("qfusage", "--budget ¥5        # a call that would cross it is refused before it is sent")
    assert usage.active_budget() is not None and usage.active_budget().yuan == 5.0  # type: ignore[union-attr]
    ip.run_line_magic("qfusage", "--budget off  # none")
    assert usage.active_budget() is None
    assert ip.run_line_magic("qfusage", "--by cell          # calls, tokens, cache hits") is not None
    ip.run_line_magic("qfcache", "off   # every call asks the model")
    ip.run_line_magic("qfcache", "on # again")
    assert capsys.readouterr().out.count("qfnb response cache:") == 2
    with pytest.raises(UsageError, match="got 'ce#ll'"):  # a # inside a word is no note
        ip.run_line_magic("qfusage", "--by ce#ll")


def test_the_cached_badge_says_how_old_and_how_to_ask_again() -> None:
    assert "3 min ago" in cached_badge(180) and "--fresh" in cached_badge(180)
    assert "12 s ago" in cached_badge(12)
    assert "2 h ago" in cached_badge(7200)


def test_a_replayed_answers_rendered_footer_carries_the_badge() -> None:
    from qfnb._core.http.response import QfResponse
    from qfnb.notebook.chat.answer import CellAnswer, render_answers

    replayed: QfResponse[object] = QfResponse(200, {}, {"result": "hi"})
    replayed.provenance = {"cache": {"hit": True, "age_s": 180.0}}
    answer = CellAnswer(model="m", text="hi", done=True, response=replayed)
    data, _ = render_answers([answer])
    assert cached_badge(180.0) in data["text/html"] and "↺ cached · 3 min ago" in data["text/plain"]
    fresh = CellAnswer(model="m", text="hi", done=True)
    both, _ = render_answers([answer, fresh])
    assert both["text/html"].count('class="qfnb-cached"') == 1


def _final(pub: Any) -> dict[str, Any]:
    return [o for o in pub.outputs if "qfnb" in (o.get("metadata") or {})][-1]


@pytest.mark.sockets
def test_a_replayed_qfchat_answer_says_so_and_fresh_asks_again(ip: InteractiveShell, pub: Any,
                                                               cloud_env: Any) -> None:
    ip.user_ns["topic"] = "LoRA"
    cell = "Explain {topic} briefly."
    ip.run_cell_magic("qfchat", "-t 0.3 -s a", cell)
    first = _final(pub)
    assert len(cloud_env.calls("/chat/")) == 1
    assert "cached" not in first["data"]["text/plain"]
    ip.run_cell_magic("qfchat", "-t 0.3 -s b", cell)  # a new session: the same request
    again = _final(pub)
    assert len(cloud_env.calls("/chat/")) == 1  # answered from the cache
    assert "↺ cached" in again["data"]["text/plain"] and "--fresh to ask again" in again["data"]["text/plain"]
    assert again["data"]["text/plain"].split("\n-- ")[0] == first["data"]["text/plain"].split("\n-- ")[0]
    meta = again["metadata"]["qfnb"]
    assert meta["template"]["variables"] == ["topic"] and len(meta["template"]["hash"]) == 16
    (prov,) = meta["provenance"]
    assert prov["cache"]["hit"] is True and prov["params"]["temperature"] == 0.3 and prov["usage"]["total_tokens"]
    assert prov["platform"] == "cloud" and prov["base_url"] == cloud_env.base_url
    text = str(meta)
    for secret in (cloud_env.ak, cloud_env.sk, cloud_env.access_key, cloud_env.secret_key):
        assert secret not in text
    ip.run_cell_magic("qfchat", "-t 0.3 -s c --fresh", cell)
    assert len(cloud_env.calls("/chat/")) == 2
    assert "cached" not in _final(pub)["data"]["text/plain"]


def test_qfusage_draws_the_tokens_it_lists(ip: InteractiveShell, fake: Any, make_config: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart beside the table: one stacked bar per row, drawn from the table's own tokens."""
    from qfnb.notebook.ledger import usage as nb_usage
    from qfnb.notebook.render import charts

    drawn: list[dict[str, dict[str, float]]] = []
    real = charts.usage_bars
    monkeypatch.setattr(charts, "usage_bars", lambda data, **kw: drawn.append(data) or real(data, **kw))
    shown: list[str] = []
    monkeypatch.setattr(nb_usage, "display", lambda obj: shown.append(obj.data))
    chat = qfnb.ChatCompletion(config=make_config())
    chat.do(messages=MSG)
    chat.do(messages=MSG)  # replayed: its tokens are saved ones
    table = ip.run_line_magic("qfusage", "--by model")
    assert len(drawn) == 1 and list(drawn[0]) == [str(g) for g in table.index]
    bar = drawn[0][str(table.index[0])]
    assert bar["prompt"] == table["prompt_tokens"].iloc[0] and bar["completion"] == table["completion_tokens"].iloc[0]
    assert bar["saved by the cache"] == table["saved_tokens"].iloc[0] > 0
    assert len(shown) == 1 and 'class="qfnb-usage-chart"' in shown[0] and "data:image/png;base64," in shown[0]


def test_a_footer_never_lands_inside_an_unclosed_code_block() -> None:
    from qfnb.notebook.chat.answer import close_fences

    cut = "Here:\n```python\ndef f():\n    return"
    assert close_fences(cut) == cut + "\n```"
    closed = "```\na\n```\nafter"
    assert close_fences(closed) == closed
    assert close_fences("~~~\nx") == "~~~\nx\n~~~"
    assert close_fences("~~~\n```\nx") == "~~~\n```\nx\n~~~"  # a ``` inside a ~~~ block is text
    from qfnb.notebook.chat.answer import CellAnswer, render_answers

    data, _ = render_answers([CellAnswer(model="m", text=cut, done=True)])
    body, footer = data["text/html"].split('<div class="qfnb-footer"', 1)
    assert body.rstrip().endswith("</code></pre>") and "<code" not in footer  # the footer is not code


def test_a_bar_over_replayed_calls_says_they_were_replayed(ip: InteractiveShell, fake: Any,
                                                          make_config: Any) -> None:
    from qfnb._core.runtime.progress import ProgressSnapshot
    from qfnb.notebook.widgets.progress_bar import WidgetRenderer

    chat = qfnb.ChatCompletion(config=make_config())
    fresh = WidgetRenderer("batch")
    chat.do(messages=MSG)
    fresh.close(ProgressSnapshot("batch", 1, 1, 0, 0.01, closed=True))
    assert "replayed" not in fresh.box.text  # asked the model: no note
    replay = WidgetRenderer("batch")
    chat.do(messages=MSG)
    chat.do(messages=MSG)
    replay.close(ProgressSnapshot("batch", 2, 2, 0, 0.01, closed=True))
    assert len(fake.calls("/chat/")) == 1
    assert "↺ 2 replayed from the cache (62 tokens saved)" in replay.box.text
    # the magic's flag and the call's keyword, each where it belongs (it read "--fresh (cache='refresh')")
    assert 'to ask again: --fresh on a magic, cache="refresh" on a call' in replay.box.text
    assert "generated" not in replay.box.text
    final = ip.display_pub.outputs[-1]["data"]  # type: ignore[attr-defined]
    assert "↺ 2 replayed" in final["text/html"] and "↺ 2 replayed" in final["text/plain"]


def test_a_bar_counts_calls_not_items_and_names_answers_from_the_store(ip: InteractiveShell, fake: Any,
                                                                      make_config: Any) -> None:
    """The first %qfeval said "↺ 20 of 20 replayed" while it generated every answer: it counted the
    replayed embedding calls of the user's callable against its items. A bar's figures are calls, each
    kind named: generated, replayed, reused from the evaluation store."""
    from qfnb._core.record.ledger import STORE_API, UsageRow, default_ledger
    from qfnb._core.runtime.progress import ProgressSnapshot
    from qfnb.notebook.widgets.progress_bar import WidgetRenderer

    chat = qfnb.ChatCompletion(config=make_config())
    chat.do(messages=MSG)  # an earlier cell asked once
    bar = WidgetRenderer("evaluation")
    for i in range(2):  # two answers generated, each after a callable's repeated (replayed) call
        chat.do(messages=MSG)
        chat.do(messages=[{"role": "user", "content": f"item {i}"}])
    default_ledger().record(UsageRow(api=STORE_API, model="chat", platform="local", cache_hit=True))
    bar.close(ProgressSnapshot("evaluation", 3, 3, 0, 0.01, closed=True))
    assert ("2 calls generated" in bar.box.text and "↺ 2 replayed from the cache" in bar.box.text
            and "1 answer reused from the evaluation store" in bar.box.text and " of " not in bar.box.text)


def test_qfusage_rounds_its_figures_and_says_latency_sums_overlapping_calls(ip: InteractiveShell) -> None:
    """It showed raw sums (latency_s 15.756008) and summed concurrent calls' latency without saying so."""
    from qfnb._core.record.ledger import UsageRow, default_ledger

    for latency in (5.2513, 10.504708):  # two calls that overlapped
        default_ledger().record(UsageRow(api="chat", model="ERNIE-Speed-8K", platform="cloud", prompt_tokens=1000,
                                         completion_tokens=333, total_tokens=1333, latency_s=latency))
    table = ip.run_line_magic("qfusage", "--by model")
    assert table["latency_s"].iloc[0] == 15.8
    assert all(round(v, 4) == v for col in ("cost_yuan", "cloud_equivalent_yuan") for v in table[col])
    shown = "".join(str(o["data"]) for o in ip.display_pub.outputs)  # type: ignore[attr-defined]
    assert "latency_s sums each call" in shown and "calls made at once overlap: more than the wall time" in shown


def test_qfusage_opens_with_the_yuan_and_fits_the_page(ip: InteractiveShell) -> None:
    """The table overflowed an exported page and hid real_time_yuan; a local model's cost read NaN in
    one kernel (a Ray batch's rows taken for a cloud model's) and 0.0000 in the next."""
    from qfnb._core.record.ledger import UsageRow, default_ledger

    ledger = default_ledger()
    ledger.record(UsageRow(api="batch-job", model="ernie-4.5-turbo-128k", platform="cloud", prompt_tokens=10_000,
                           completion_tokens=5_000, total_tokens=15_000, requests=200))
    ledger.record(UsageRow(api="batch-job", model="Gemma-3-270M", platform="ray", prompt_tokens=900,
                           completion_tokens=300, total_tokens=1_200, requests=40))
    table = ip.run_line_magic("qfusage", "--by model")
    paid, real = table["cost_yuan"].sum(), table["real_time_yuan"].sum()
    assert real > paid > 0 and table.loc["Gemma-3-270M", "cost_yuan"] == 0.0
    assert table.loc["Gemma-3-270M", "price"] == "local" and table.loc["Gemma-3-270M", "target"] == "ray"
    assert list(table["calls"]) == [200, 40]
    shown = "".join(str(o["data"]) for o in ip.display_pub.outputs)  # type: ignore[attr-defined]
    assert f"¥{paid:.4f} paid · ¥{real:.4f} at real-time prices · 240 calls" in shown
    assert shown.index("paid") < shown.index("this kernel session")  # the ¥ headline first
    html = table._repr_html_()
    assert "¥ real-time" in html and "local" in html and "nan" not in html.lower()
    assert html.split("</tr>")[0].count("<th") == 8  # the group, then 7 narrow columns, whatever the frame holds
