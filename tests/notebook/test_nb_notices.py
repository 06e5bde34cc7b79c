"""qfnb's notices (a model the cloud renamed) show as one clean line under the cell, not as a Python
warning naming an internal path; other warnings are shown as before."""

from __future__ import annotations

import warnings

import pytest
from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import RecordingPublisher

from qfnb.resources.inference import targets


def test_a_renamed_model_is_a_one_line_notice_under_the_cell(recwarn: pytest.WarningsRecorder, ip: InteractiveShell,
                                                             pub: RecordingPublisher,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "_RENAMES_SAID", set())
    warnings.simplefilter("default")
    ip.run_cell("import threading\n"
                "from qfnb.resources.inference.targets import v2_model_id\n"
                "sent = v2_model_id('ERNIE-Bot')\n"
                "t = threading.Thread(target=v2_model_id, args=('ERNIE-Bot-turbo',)); t.start(); t.join()")
    notes = [o["data"]["text/plain"] for o in pub.outputs if str(o["data"].get("text/plain")).startswith("qfnb: ")]
    sent = ip.user_ns["sent"]
    assert notes[0].startswith("qfnb: ERNIE-Bot is called ") and notes[0].endswith(f": sent as {sent}")
    assert len(notes) == 2 and "ERNIE-Bot-turbo" in notes[1]  # the one said on another thread too
    html = next(o["data"]["text/html"] for o in pub.outputs if "qfnb-notice" in str(o["data"].get("text/html")))
    assert "ⓘ qfnb: ERNIE-Bot is called" in html
    err = capsys.readouterr().err
    assert "RenamedModelWarning" not in err and "targets.py" not in err
    assert not [w for w in recwarn if issubclass(w.category, targets.RenamedModelWarning)]

    ip.run_cell("import warnings; warnings.warn('something else', UserWarning)")
    assert [str(w.message) for w in recwarn] == ["something else"]  # others go on as before
