"""``%%qfchat --prompt NAME var=value``: a prompt saved on the (local) platform, rendered as the prompt."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from nb_doubles import FakeChatBackend

from qfnb.common import Prompt, hub
from tests.fakes.local_platform import ServedPlatform


def test_a_saved_prompt_is_rendered_and_sent(ip, backend: FakeChatBackend, local_platform: ServedPlatform,  # type: ignore[no-untyped-def]
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    local_platform.set_env(monkeypatch)
    hub.save(Prompt(template="Write a {style} line about {topic}.", name="one_liner"), to_platform=True)
    ip.run_line_magic("qfchat", "--prompt one_liner style=dry topic=tea")  # the line form: no body
    assert backend.requests[-1].messages[-1] == {"role": "user", "content": "Write a dry line about tea."}
    ip.run_cell_magic("qfchat", "--prompt one_liner style=warm topic=rain -s other", "Keep it short.")
    assert backend.requests[-1].messages[-1]["content"] == "Write a warm line about rain.\n\nKeep it short."
    with pytest.raises(UsageError, match="variable `topic` is not provided"):
        ip.run_line_magic("qfchat", "--prompt one_liner style=dry")
    with pytest.raises(UsageError, match="name=value, got 'tea'"):
        ip.run_line_magic("qfchat", "--prompt one_liner tea")
    with pytest.raises(UsageError, match="no prompt named 'missing'"):
        ip.run_line_magic("qfchat", "--prompt missing")
    assert len(backend.requests) == 2
