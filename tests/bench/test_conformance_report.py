"""bench/conformance/report.py: a JUnit file of an official run read into per-file counts (passed,
failed, skipped, errors), the table docs/conformance.md records."""

from __future__ import annotations

from pathlib import Path

from bench.conformance.report import parse_junit, render

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="qianfan.tests.chat_completion_test" name="test_ok"/>
<testcase classname="qianfan.tests.chat_completion_test" name="test_bad">
  <failure message="assert 1 == 2">E       AssertionError: assert 1 == 2</failure></testcase>
<testcase classname="qianfan.tests.chat_completion_test" name="test_later">
  <skipped message="no reason"/></testcase>
<testcase classname="qianfan.tests.dataset.table_test" name="test_torn">
  <failure message="boom">E       ValueError: boom</failure></testcase>
<testcase classname="qianfan.tests.dataset.table_test" name="test_torn">
  <error message="teardown">E       KeyError: 'QIANFAN_AK'</error></testcase>
<testcase classname="" name="qianfan.tests.auth_test">
  <error message="collection failure">E   ModuleNotFoundError: No module named 'qfnb.resources.auth'</error></testcase>
</testsuite></testsuites>"""
FILES = ["chat_completion_test.py", "dataset/table_test.py", "auth_test.py"]


def test_each_file_counts_passed_failed_skipped_and_errors(tmp_path: Path) -> None:
    xml = tmp_path / "qfnb.xml"
    xml.write_text(JUNIT, encoding="utf-8")
    chat, table, auth = parse_junit(xml, FILES)
    assert (chat.counts, chat.total) == ("1/1/1/0", 2)
    assert chat.failures == {"test_bad": "AssertionError: assert 1 == 2"}
    assert table.counts == "0/0/0/1"  # failed, then its teardown raised: one test, an error
    assert auth.counts == "0/0/0/1" and auth.failures["<import>"].startswith("ModuleNotFoundError")
    table_text = render(FILES, {"official": [chat, table, auth], "qfnb": [chat, table, auth]})
    assert "chat_completion_test.py" in table_text and "1/1/1/0" in table_text
    assert table_text.splitlines()[4].split()[1:] == ["1/1/1/2", "1/1/1/2", "4"]  # TOTAL


def test_a_run_that_wrote_no_report_names_the_reason_from_its_log(tmp_path: Path) -> None:
    (tmp_path / "qfnb.log").write_text("E   ImportError: cannot import name 'x'\n", encoding="utf-8")
    (only,) = parse_junit(tmp_path / "qfnb.xml", ["tool_test.py"])
    assert only.failures == {"<conftest>": "ImportError: cannot import name 'x'"} and only.counts == "0/0/0/1"
