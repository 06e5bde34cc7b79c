"""Model loading without transformers' tqdm bars: the platform runs as a detached daemon whose
output goes to ``<data_dir>/daemon.log`` (or in ``qfnb serve``'s terminal), where a "Loading
weights" bar would be a run of carriage-return updates, not a bar."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loading() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
