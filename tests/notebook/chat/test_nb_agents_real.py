"""``%%qfchat --tools --yes`` and ``--schema`` against the real embedded platform and the local
Qwen2.5-Coder-0.5B-Instruct (marked ``real_model``; short answers)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

pytestmark = pytest.mark.real_model

MODEL = "Qwen2.5-Coder-0.5B-Instruct"


def test_tools_yes_runs_the_notebook_function_once_and_ends(ip, embedded) -> None:  # type: ignore[no-untyped-def]
    """The loop on the real engine: the model calls the function with Paris, it runs once (a
    repeated call is not run again) and the loop ends within the cap in a text answer that uses
    the result (the last request asks for it after the result: qfnb.agents.closing_messages)."""
    asked: list[str] = []

    def get_weather(city: str) -> dict[str, object]:
        """Current weather for a city."""
        asked.append(city)
        return {"city": city, "temp_c": 17, "sky": "light rain"}

    ip.user_ns["get_weather"] = get_weather
    ip.run_cell_magic("qfchat", f"-m {MODEL} --tools get_weather --yes --max-steps 3 -t 0.01 --max-tokens 64 "
                                f"--fresh -o ans", "What's the weather in Paris?")
    assert [c.lower() for c in asked] == ["paris"], asked
    answer = ip.user_ns["ans"]
    assert answer.error is None and answer.done and answer.text.strip(), answer
    assert '"name"' not in answer.text and ("17" in answer.text or "rain" in answer.text.lower()), answer.text


def test_schema_gives_a_validated_instance(ip, embedded) -> None:  # type: ignore[no-untyped-def]
    class Ticket(BaseModel):
        label: Literal["bug", "feature", "question"]
        summary: str

    ip.user_ns["Ticket"] = Ticket
    ip.run_cell_magic("qfchat", f"-m {MODEL} --schema Ticket -t 0.01 --max-tokens 80 --fresh -o t",
                      "Classify this report: 'the app crashes when I save'")
    assert isinstance(ip.user_ns["t"], Ticket)
