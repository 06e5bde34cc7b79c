"""What the browser tests share: a notebook written for JupyterLab, the theme switch, Run All,
screenshots, and the WCAG contrast of computed colours."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
from nbcheck import ROOT
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import Error as PlaywrightError

SHOTS = ROOT / "artifacts" / "screenshots"
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark", "dark-hc": "JupyterLab Dark High Contrast"}
RUN_ALL_CELLS = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jupyter_lab(root: Path, app: str = "jupyterlab", *, both: bool = False,
                **env: str) -> Iterator[tuple[str, Path, str]]:
    """JupyterLab (or ``app="notebook"``: Notebook 7) serving ``root`` on a free loopback port:
    ``(base URL, root, token)``; its output goes to a log beside ``root`` (:func:`log_tail`). ``both``:
    JupyterLab whose server also serves Notebook 7's pages (``/notebooks/...``) with its app exposed
    to the tests, one server for both."""
    port, token = free_port(), secrets.token_hex(16)
    # no "get notified about Jupyter news?" toast over the screenshots
    news = root / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    # the labextension built from this checkout, ahead of the one the shared environment links to
    # (JUPYTER_PATH's labextensions come first, and the first of a name wins)
    shared = root / ".jupyter-path" / "labextensions"
    shared.mkdir(parents=True, exist_ok=True)
    if not (shared / "qfnb-cell-magics").exists():
        (shared / "qfnb-cell-magics").symlink_to(ROOT / "qfnb" / "notebook" / "labextension")
    env = {
        **os.environ,
        "JUPYTER_PATH": os.pathsep.join(filter(None, [str(root / ".jupyter-path"), os.environ.get("JUPYTER_PATH")])),
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'notebook'}",
        **env,
    }
    log = _log_of(root).open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            app,
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            *(["--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly"]
              if app == "jupyterlab" else []),
            *(["--JupyterNotebookApp.expose_app_in_browser=True"] if app == "notebook" or both else []),
            f"--ServerApp.root_dir={root}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        deadline = time.monotonic() + 150  # a loaded 2-core machine took over 60 s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", root, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _log_of(root: Path) -> Path:
    """Where the JupyterLab serving ``root`` writes (beside it: not a file its file browser lists)."""
    return root.with_name(root.name + ".jupyter.log")


def log_tail(root: Path, lines: int = 40) -> str:
    """The last ``lines`` of what the JupyterLab serving ``root`` printed."""
    path = _log_of(root)
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def answers(lab: tuple[str, Path, str]) -> bool:
    """Whether the JupyterLab ``lab`` still answers its API."""
    base, _, token = lab
    try:
        return httpx.get(f"{base}/api/status", headers={"Authorization": f"token {token}"}, timeout=30).is_success
    except httpx.HTTPError:
        return False


def shut_down_kernels(lab: tuple[str, Path, str]) -> None:
    """Shut down every kernel the JupyterLab ``lab`` runs (what its notebooks started)."""
    base, _, token = lab
    headers = {"Authorization": f"token {token}"}
    for kernel in httpx.get(f"{base}/api/kernels", headers=headers, timeout=30).json():
        httpx.delete(f"{base}/api/kernels/{kernel['id']}", headers=headers, timeout=60)


def write_notebook(path: Path, cells: list[str]) -> None:
    """A notebook of code ``cells`` at ``path``, for the python3 kernel."""
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells], metadata=KERNEL), path)


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab to ``theme`` (a key of :data:`THEMES`) and wait until it shows."""
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {THEMES[theme]!r}}})")
    light = "true" if theme == "light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=30_000)
    page.wait_for_timeout(500)


def rgba(css: str) -> tuple[float, float, float, float]:
    nums = [float(x) for x in re.findall(r"[\d.]+", css)]
    alpha = nums[3] if len(nums) > 3 else 1.0
    if css.startswith("color(srgb"):
        return nums[0] * 255, nums[1] * 255, nums[2] * 255, alpha
    return nums[0], nums[1], nums[2], alpha


def over(fg: str, bg: str) -> tuple[float, float, float]:
    """``fg`` composited over the (opaque) ``bg``: what the eye sees of a translucent text colour."""
    *f, a = rgba(fg)
    b = rgba(bg)[:3]
    r, g, bl = (a * x + (1 - a) * y for x, y in zip(f, b, strict=True))
    return r, g, bl


def luminance(c: tuple[float, float, float]) -> float:
    def ch(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (ch(v) for v in c)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    a, b = sorted((luminance(over(fg, bg)), luminance(rgba(bg)[:3])), reverse=True)
    return (a + 0.05) / (b + 0.05)


#: a JS function ``bg(el)``: the first opaque background colour from ``el`` up, else the page's
BACKGROUND_OF = """const bg = el => {
    for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor;
      if (c && c !== 'transparent' && !/^rgba\\(0, 0, 0, 0\\)$/.test(c)) return c; }
    return getComputedStyle(document.body).backgroundColor; };"""

CONTRAST_OF = """(selector) => {
  """ + BACKGROUND_OF + """
  return [...document.querySelectorAll(selector)].filter(el => el.getClientRects().length > 0)
    .map(el => ({fg: getComputedStyle(el).color, bg: bg(el), text: el.textContent.trim().slice(0, 30)}));
}"""


def low_contrast(page: Any, selector: str) -> list[tuple[str, str, str, float]]:
    """Texts under ``selector`` whose colour on their background is below WCAG AA (4.5:1)."""
    cells = page.evaluate(CONTRAST_OF, selector)
    assert cells, selector
    return [(c["text"], c["fg"], c["bg"], round(contrast(c["fg"], c["bg"]), 2)) for c in cells
            if c["text"] and contrast(c["fg"], c["bg"]) < 4.5]


def shot(page: Any, selector: str, name: str, tries: int = 4) -> None:
    """Screenshot the last ``selector`` match. A widget whose display is updated is rendered anew
    (the old node leaves the DOM mid-scroll, or is hidden while it is swapped), so a detached or
    hidden node is looked up again."""
    for attempt in range(tries):
        loc = page.locator(selector).last
        try:
            loc.scroll_into_view_if_needed()
            loc.screenshot(path=str(SHOTS / name))
            return
        except PlaywrightError as exc:
            # detached, or hidden for the moment its display is swapped (live widget -> static output)
            if not any(w in str(exc) for w in ("not attached", "not visible")) or attempt == tries - 1:
                raise
            page.wait_for_timeout(500)
