"""``write_private_json``: the one atomic, private JSON writer."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from qfnb.protocol.platform.files import write_private_json


def test_it_writes_0600_and_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "runtime.json"
    assert write_private_json(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and json.loads(path.read_text()) == {"a": 1}
    before = path.stat().st_ino
    assert write_private_json(path, {"a": 2, "名": "值"}, indent=1)
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": 2, "名": "值"}
    assert path.stat().st_ino != before  # a new file renamed into place, not rewritten in place
    assert [p.name for p in path.parent.iterdir()] == ["runtime.json"]  # no temp file left


def test_exclusive_keeps_the_first_writers_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    assert write_private_json(path, {"who": "first"}, exclusive=True)
    assert not write_private_json(path, {"who": "second"}, exclusive=True)
    assert json.loads(path.read_text()) == {"who": "first"} and len(list(tmp_path.iterdir())) == 1
