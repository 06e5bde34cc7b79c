"""The prebuilt JupyterLab extension (labextension/ -> qfnb/notebook/labextension/) in headless
Chromium, in JupyterLab 4 and Notebook 7, light (slow) and dark: the body of a ``%%qfchat`` or
``%%qfimage`` cell is highlighted as Markdown (an apostrophe opens no Python string), other code
cells stay Python, a cell becomes one or the other as its first line is typed or deleted, and the
kernel's start (which resets every code cell's language) changes nothing. Also: the extension is
where a wheel installs it, and its list of prose magics is qfnb's list of cell magics."""

from __future__ import annotations

import json
import re
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import jupyter_lab, set_theme, shot, write_notebook
from IPython.core.interactiveshell import InteractiveShell
from nbcheck import ROOT
from test_nb_browser import open_lab_page

BUILT = ROOT / "qfnb" / "notebook" / "labextension"
SOURCE = ROOT / "labextension" / "src" / "index.ts"
NAME = "qfnb-cell-magics"
needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")

CELLS = [
    "%%qfchat -m Qwen2.5-Coder-0.5B-Instruct\nWhat's the capital of Zorvia? It's not Paris, isn't it?\n"
    "Don't guess: say you don't know.",
    "x = 'a Python string'  # stays Python\ny = len(x)",
    "%%qfimage -o cat\nA cat's hat, on the cat's head",
    "",
]

#: per code cell: its editor's MIME type, and how many of its tokens have the Python string colour
TOKENS = """() => {
  const probe = document.createElement('span');
  probe.style.color = 'var(--jp-mirror-editor-string-color)';
  document.body.appendChild(probe);
  const stringColor = getComputedStyle(probe).color;
  probe.remove();
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  return cells.map(cell => ({
    mime: cell.model.mimeType,
    strings: [...cell.node.querySelectorAll('.cm-content span')]
      .filter(s => getComputedStyle(s).color === stringColor).map(s => s.textContent),
  }));
}"""


def _installed() -> Path:
    return Path(sys.prefix) / "share" / "jupyter" / "labextensions" / NAME


@pytest.fixture(scope="module", params=["jupyterlab", "notebook"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """JupyterLab or Notebook 7 with the extension: the installed one (a wheel's data files;
    scripts/bootstrap.sh links the committed build into an editable venv), else the committed build
    through JUPYTER_PATH."""
    root = tmp_path_factory.mktemp(f"magics-{request.param}")
    env: dict[str, str] = {}
    if not (_installed() / "package.json").is_file():
        extra = root / "jupyter-path"
        (extra / "labextensions").mkdir(parents=True)
        (extra / "labextensions" / NAME).symlink_to(BUILT)
        env["JUPYTER_PATH"] = str(extra)
    with jupyter_lab(root, request.param, **env) as running:
        yield running


def _wait_for_languages(page: Any, mimes: list[str]) -> list[dict[str, Any]]:
    page.wait_for_function(
        "(want) => { const cells = window.jupyterapp.shell.currentWidget.content.widgets;"
        " return cells.length === want.length && cells.every((c, i) => c.model.mimeType === want[i]); }",
        arg=mimes, timeout=30_000)
    page.wait_for_timeout(700)  # the editor re-highlights in the new language
    tokens: list[dict[str, Any]] = page.evaluate(TOKENS)
    return tokens


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize("theme", [pytest.param("light", marks=pytest.mark.slow), "dark"])
def test_prose_magic_cells_are_highlighted_as_markdown(lab: tuple[str, Path, str], theme: str) -> None:
    _, root, _ = lab
    app = "notebook7" if root.name.startswith("magics-notebook") else "lab"
    name = f"cell_magics_{app}_{theme}.ipynb"
    write_notebook(root / name, CELLS)
    ready = ("() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel"
             " && window.jupyterapp.shell.currentWidget.model?.getMetadata('language_info')")
    with open_lab_page(lab, name, width=1100, height=900, ready=ready,
                       path="notebooks" if app == "notebook7" else "lab/tree") as page:
        set_theme(page, theme)
        # the kernel has started (language_info set: the notebook reset every code cell to Python)
        md, py = "text/x-ipythongfm", "text/x-ipython"
        tokens = _wait_for_languages(page, [md, py, md, py])
        assert tokens[0]["strings"] == [] and tokens[2]["strings"] == [], tokens
        assert "'a Python string'" in tokens[1]["strings"], tokens  # the check sees Python strings
        shot(page, ".jp-Notebook", f"cell_magics_{app}_{theme}.png")

        # typing a magic's first line into an empty cell makes it prose, deleting it Python again
        last = page.locator(".jp-Cell .cm-content").last
        last.click()
        page.keyboard.type("%%qfchat\nWhat's new? Don't say 'nothing'")
        tokens = _wait_for_languages(page, [md, py, md, md])
        assert tokens[3]["strings"] == [], tokens
        shot(page, ".jp-Cell >> nth=-1", f"cell_magics_typed_{app}_{theme}.png")
        page.keyboard.press("Control+Home")
        page.keyboard.press("Shift+End")
        page.keyboard.press("Delete")
        tokens = _wait_for_languages(page, [md, py, md, py])
        assert tokens[3]["strings"], tokens  # Python again: 'nothing' and the apostrophes are strings


def test_the_extension_lists_every_qfnb_cell_magic_and_a_wheel_installs_it(ip: InteractiveShell) -> None:
    ours = {name for name, fn in ip.magics_manager.magics["cell"].items()
            if getattr(fn, "__module__", "").startswith("qfnb.")}
    listed = re.search(r"PROSE_MAGICS = \[([^\]]*)\]", SOURCE.read_text())
    assert listed is not None
    assert set(re.findall(r"'(\w+)'", listed.group(1))) == ours == {"qfchat", "qfimage"}
    # the committed build is of this source, and names the file Jupyter loads
    built = json.loads((BUILT / "package.json").read_text())
    assert built["name"] == NAME and (BUILT / built["jupyterlab"]["_build"]["load"]).is_file()
    bundle = "".join(p.read_text() for p in (BUILT / "static").glob("*.js"))
    assert "text/x-ipythongfm" in bundle and "qfimage" in bundle and "qfchat" in bundle
    assert json.loads((ROOT / "labextension" / "package.json").read_text())["name"] == NAME
    # a wheel puts the build where Jupyter looks for extensions
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    target = f"share/jupyter/labextensions/{NAME}"
    assert files[target] == ["qfnb/notebook/labextension/package.json"]
    assert files[f"{target}/static"] == ["qfnb/notebook/labextension/static/*"]
