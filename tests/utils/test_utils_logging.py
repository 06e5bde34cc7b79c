"""The official SDK's ``qianfan.utils`` logging helpers (:mod:`qfnb.utils`): they log on the ``qfnb`` logger,
from the caller's line, at the level ``enable_log`` sets, and ``disable_log`` silences them."""

from __future__ import annotations

import logging

import pytest

from qfnb import utils


def test_the_helpers_log_on_qfnbs_logger_at_the_level_set(caplog: pytest.LogCaptureFixture) -> None:
    before = utils.logger.level
    try:
        utils.enable_log(logging.INFO)
        with caplog.at_level(logging.INFO, logger="qfnb"):
            utils.log_info("rows: %d", 3)
            utils.log_debug("not shown at INFO")
        (record,) = [r for r in caplog.records if r.name == "qfnb"]
        assert record.getMessage() == "rows: 3" and record.filename == "test_utils_logging.py"
        utils.disable_log()
        assert not utils.logger.isEnabledFor(logging.ERROR)
    finally:
        utils.logger.setLevel(before)
