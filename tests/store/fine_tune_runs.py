"""Starting a fine-tune run on the in-process platform, as the store tests size a base's RAM need:
one training row in the local BOS, and the refusal a machine with too little RAM gets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qfnb.local.domain.state.values import BodyError
from qfnb.local.domain.training import fine_tunes
from qfnb.local.engines.store import byom
from qfnb.protocol.console.train_ask import TrainData


def start_run(platform: Any, container: dict[str, Any]) -> dict[str, Any]:
    """``fine_tunes.create_run`` for ``container`` on one training row (written to ``bos:/b/rows.jsonl``)."""
    rows = platform.objects.path("b", "rows.jsonl")
    rows.parent.mkdir(parents=True, exist_ok=True)
    rows.write_text(json.dumps({"prompt": "q", "response": [["a"]]}) + "\n")
    ask = fine_tunes.train_ask(None, container["model"], TrainData((("trainset", "bos:/b/rows.jsonl"),)), {}, "hyper")
    return fine_tunes.create_run(platform, container, ask)


def assert_refused_for_ram(platform: Any, container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """With 0.5 GiB of RAM free, a run of ``container`` (a base needing about 1 GiB) is refused and
    nothing is started."""
    monkeypatch.setattr(byom, "available_bytes", lambda: 512 * 2**20)
    with pytest.raises(BodyError) as err:
        start_run(platform, container)
    assert "needs about 1.0 GiB of RAM and 0.5 GiB is available; nothing was started." in str(err.value)
    assert not (platform.settings.data_dir / "jobs").exists() and platform.store.all("runs") == []
