"""The house's figures that hold (:mod:`bench.house_metrics`): no module tests a train mode's name outside the
mode table (issue 93), and the count finds one that does."""

from __future__ import annotations

from pathlib import Path

from bench.house_metrics import MODE_TABLE, mode_tests, untwinned

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_tests_a_mode_name_outside_the_mode_table() -> None:
    assert (ROOT / MODE_TABLE).is_file()
    assert mode_tests(ROOT / "qfnb") == 0


def test_the_count_finds_each_way_of_testing_a_mode_name(tmp_path: Path) -> None:
    package = tmp_path / "qfnb"
    (package / "protocol" / "console").mkdir(parents=True)
    (package / "a.py").write_text(
        'if mode == "DPO":\n    pass\n'            # counted
        'ok = name in ("DPO", "KTO")\n'            # counted
        'if "RFT" != mode:\n    pass\n'            # counted
        'mode: str = "SFT"  # a default, not a test\n'
        'x = 1  # == "SFT" in a comment\n')
    (tmp_path / MODE_TABLE).write_text('if name == "SFT":\n    pass\n')  # the table itself may
    assert mode_tests(package) == 3


def test_a_code_folder_without_a_test_folder_of_its_name_is_named(tmp_path: Path) -> None:
    for folder in ("qfnb/_core/http", "qfnb/local/server", "tests/core/http", "tests/local"):
        (tmp_path / folder).mkdir(parents=True)
    for package in ("qfnb/_core", "qfnb/_core/http", "qfnb/local", "qfnb/local/server"):
        (tmp_path / package / "__init__.py").write_text("")
    assert untwinned(tmp_path / "qfnb") == ["local/server"]  # tests/core is _core's twin
