"""``run.deploy()`` in a cell: how the deploy goes, then the endpoint and how to use it.

The deploy itself is a coroutine on qfnb's loop (:func:`qfnb.notebook.training.run.deploy_job`); this
cell's thread only waits on its future, redrawing one display line, so Kernel -> Interrupt stops
the wait (one line) and the deploy goes on (the dashboard still shows how it ends).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from qfnb._core.runtime.progress import fmt_duration
from qfnb.model import Service
from qfnb.notebook._ipython import live_display
from qfnb.notebook.errors import QfnbCellError, QfnbInterrupted
from qfnb.notebook.render import theme
from qfnb.resources.safe_html import clean, escape

#: seconds between redraws of the deploy line
INTERVAL = 0.5


def endpoint_line(endpoint: str) -> str:
    return f"deployed · endpoint {endpoint} · chat with it: %%qfchat -m {endpoint}"


def _bundle(text: str, color: str = theme.TEXT) -> dict[str, str]:
    return {"text/plain": text,
            "text/html": clean(f'<div class="qfnb-deploy" style="color:{color}">{escape(text)}</div>')}


def follow_deploy(dash: Any, future: Any) -> Any:
    """Show the deploy of ``dash``'s model in this cell until ``future`` ends; the service."""
    if future is None or not hasattr(future, "result"):  # a synchronous on_deploy already ran
        return dash.service
    t0 = time.monotonic()
    handle = live_display(_bundle("deploying the fine-tuned model…"), raw=True)
    try:
        while True:
            try:
                service = future.result(INTERVAL)
                break
            except concurrent.futures.TimeoutError:
                state = f" · service {dash.deploy_state}" if dash.deploy_state else ""
                handle.update(_bundle(f"deploying the fine-tuned model{state} · "
                                      f"{fmt_duration(time.monotonic() - t0)}"), raw=True)
    except KeyboardInterrupt:
        raise QfnbInterrupted("stopped waiting; the deploy goes on (the dashboard shows how it ends)",
                              title="deploy") from None
    except Exception as exc:
        handle.update(_bundle(f"deploy failed: {exc}", theme.ERROR), raw=True)
        raise QfnbCellError(f"deploy failed: {exc}", title="deploy") from exc
    endpoint = service.endpoint if isinstance(service, Service) else None  # (a deploy of qfnb's gives one)
    handle.update(_bundle(endpoint_line(dash.state.service or str(endpoint or ""))), raw=True)
    return service
