"""mypy sees the typed answers (``check_answers.py``), and ``reveal_type`` names them."""

from __future__ import annotations

from pathlib import Path

from tests.typing.mypy_run import ROOT, run_mypy


def test_answers_are_typed_through_the_generated_calls() -> None:
    done = run_mypy(ROOT / "tests/typing/check_answers.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_reveal_type_names_the_answer_fields(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from qfnb import ChatCompletion\nfrom qfnb.resources import FineTune\n"
                     "reveal_type(ChatCompletion().do([]).parsed.result)\n"
                     "reveal_type(ChatCompletion().do([]).parsed)\n"
                     "reveal_type(FineTune.V2.task_detail(task_id='t').parsed.result.run_status)\n"
                     "reveal_type(FineTune.V2.task_detail(task_id='t').parsed)\n", encoding="utf-8")
    done = run_mypy(probe)
    revealed = [line.split("Revealed type is ", 1)[1] for line in done.stdout.splitlines() if "Revealed type" in line]
    assert revealed == ['"str"', '"qfnb.protocol.answers.ChatAnswer"', '"str"',
                        '"qfnb.protocol.answers.FineTuneTaskAnswer"'], done.stdout
