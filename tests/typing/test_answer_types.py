"""mypy sees the typed answers (``check_answers.py``), and ``reveal_type`` names them."""

from __future__ import annotations

import pytest

from tests.typing.mypy_run import shared_mypy


def test_answers_are_typed_through_the_generated_calls(tmp_path_factory: pytest.TempPathFactory) -> None:
    done = shared_mypy(tmp_path_factory)
    assert not done.check("tests/typing/check_answers.py"), done.stdout + done.stderr


def test_reveal_type_names_the_answer_fields(tmp_path_factory: pytest.TempPathFactory) -> None:
    done = shared_mypy(tmp_path_factory)  # its probe_reveal.py: mypy_run.PROBES
    revealed = [line.split("Revealed type is ", 1)[1] for line in done.lines("probe_reveal.py")
                if "Revealed type" in line]
    assert revealed == ['"str"', '"qfnb.protocol.wires.qianfan.answers.ChatAnswer"', '"str"',
                        '"qfnb.protocol.wires.qianfan.answers.FineTuneTaskAnswer"'], done.stdout
