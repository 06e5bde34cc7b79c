"""The one escaping rule (qfnb.resources.safe_html), checked statically: every HTML view of the
package, fed each payload of the XSS corpus (tests/notebook/data/xss_payloads.txt), puts nothing
on the page that could run: no script-capable element, no event handler, no script URL; and
nothing the page would fetch from elsewhere as it shows (a remote image: prompt injection's
zero-click leak), only the raster ``data:`` images qfnb draws. The
browser test (test_nb_browser_xss.py) shows the same views in JupyterLab and in nbconvert's export."""

from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re
from html.parser import HTMLParser
from typing import Any

import mistune
import pytest
import xss_surfaces
from xss_surfaces import SURFACES, html_of, payloads, tiny_png, types_of

import qfnb
from qfnb.resources import safe_html

#: elements that run script, load a document or take focus/ submit on their own
FORBIDDEN_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "meta", "link",
                  "form", "input", "button", "select", "textarea", "keygen", "isindex", "svg", "math", "template",
                  "noscript", "xmp", "video", "audio", "source", "marquee", "body", "html", "head", "title",
                  "animate", "set", "use", "foreignobject", "portal"}
#: attributes a browser fetches by itself, as the page shows (a link's href waits for a click)
FETCHED = {"src", "srcset", "background", "dynsrc", "lowsrc", "poster", "data", "codebase", "ping"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "dynsrc", "lowsrc", "data", "poster",
                  "srcset", "xlink:href", "codebase", "cite", "longdesc", "usemap", "ping"}
SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.I)  # a URL without one is relative (the page's own scheme)
INLINE_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,", re.I)


class Audit(HTMLParser):
    """What a page built from the HTML could run, by a parser independent of the sanitiser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            elif name == "srcdoc" or (name == "style" and value and re.search(
                    r"expression|javascript|behavior|url\s*\(|image-set|@import", value, re.I)):
                self.found.append(f"<{tag} {name}={value!r}>")
            elif name in FETCHED and value is not None and not (
                    tag == "img" and name == "src" and INLINE_IMAGE.match(re.sub(r"[\x00-\x20]", "", value))):
                self.found.append(f"<{tag} {name}={value[:60]!r}> (fetched from elsewhere as the page shows)")
            elif name in URL_ATTRIBUTES and value is not None:
                url = re.sub(r"[\x00-\x20]", "", html.unescape(value))
                scheme = SCHEME.match(url)
                if scheme and scheme[1].lower() not in ("http", "https", "mailto") and not (
                        tag == "img" and name == "src" and INLINE_IMAGE.match(url)):
                    self.found.append(f"<{tag} {name}={value[:60]!r}>")
            elif name == "id" and value in ("jupyterapp", "document", "window", "top"):
                self.found.append(f"<{tag} id={value!r}> (clobbers a global)")


def audit(fragment: str) -> list[str]:
    parser = Audit()
    parser.feed(fragment)
    parser.close()
    return parser.found


CORPUS = payloads()


def test_the_corpus_is_the_cheat_sheet_and_polyglots() -> None:
    assert len(CORPUS) >= 120 and len(set(CORPUS)) == len(CORPUS)
    # the auditor sees the raw payloads as the attacks they are (it is not blind)
    caught = [p for p in CORPUS if audit(p)]
    assert len(caught) >= 90, len(caught)
    remote = [p for p in CORPUS if "attacker.example" in p]
    assert len(remote) >= 8 and all(audit(str(mistune.html(p))) for p in remote), "Markdown's own images fetch"


REMOTE_IMAGES = [p for p in CORPUS if "attacker.example" in p]


@pytest.mark.parametrize("payload", REMOTE_IMAGES)
def test_a_markdown_image_shows_as_a_link_never_fetched(payload: str) -> None:
    shown = safe_html.markdown(payload)
    assert "<img" not in shown and audit(shown) == []
    if payload.startswith("![exfil]("):
        assert re.search(r'<a href="[^"]*attacker\.example/[^"]*"[^>]*>🖼 exfil</a>', shown, re.I), shown


def test_only_an_image_qfnb_inlined_keeps_its_src() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    assert safe_html.clean(f'<img alt="c" src="{png}">') == f'<img alt="c" src="{png}">'
    assert safe_html.clean('<img alt="c" src="https://attacker.example/x.png">') == '<img alt="c">'
    assert "<img" not in safe_html.markdown(f"![chart]({png})"), "a model's data: image is not shown inline"


@pytest.mark.parametrize("payload", CORPUS)
def test_markdown_renders_each_payload_inert(payload: str) -> None:
    assert audit(safe_html.markdown(payload)) == []
    assert audit(safe_html.clean(payload)) == []
    assert "<" not in safe_html.escape(payload) and '"' not in safe_html.escape(payload)


@pytest.mark.parametrize("name", list(SURFACES))
def test_every_view_shows_the_whole_corpus_inert(name: str, ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    build = SURFACES[name]
    pages = html_of(build("\n\n".join(CORPUS)))  # its charts drawn with the whole corpus in their labels
    assert pages, f"{name} shows no HTML"
    for page in pages:
        assert audit(page) == [], name
    # each payload alone too (a field that is only one of them). A chart is an inline PNG whatever its
    # labels say, and it was drawn with every payload above: here a 1x1 PNG stands in for its pixels
    # (drawing them took most of this test's time: 2-3 s a view with charts)
    monkeypatch.setattr("qfnb.notebook.render.charts._png", lambda fig: tiny_png())
    for payload in CORPUS[::15]:
        for page in html_of(build(payload)):
            assert audit(page) == [], (name, payload)


def test_no_view_sends_untrusted_text_as_markdown(ip: Any) -> None:
    """JupyterLab shows a live output's Markdown with its raw HTML, so no view sends text/markdown."""
    for name, build in SURFACES.items():
        shown = build("<b>x</b>")
        data = shown._repr_mimebundle_() if hasattr(shown, "_repr_mimebundle_") else {}
        data = data[0] if isinstance(data, tuple) else data
        assert "text/markdown" not in (data or {}), name
    assert not hasattr(xss_surfaces.chat_history("x"), "_repr_markdown_")


def _html_classes() -> set[str]:
    found = set()
    for info in pkgutil.walk_packages(qfnb.__path__, "qfnb."):
        if info.name.startswith(("qfnb.local", "qfnb.common.cli")):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if ((inspect.isclass(value) and value.__module__ == info.name
                    and any(m in vars(value) for m in ("_repr_html_", "_repr_mimebundle_", "_repr_markdown_")))
                    or (inspect.isclass(value) and value.__module__ == info.name
                    and any(b.__module__.startswith("ipywidgets") for b in value.__mro__[1:]))):
                found.add(f"{info.name}.{value.__qualname__}")
    return found


def test_the_surfaces_cover_every_html_view_of_the_package(ip: Any) -> None:
    """A class of qfnb with an HTML repr, or an ipywidget, that the corpus test does not build
    fails here: a new view joins SURFACES (and so the static and the browser test)."""
    built: set[str] = set()
    for build in SURFACES.values():
        built |= types_of(build("x"))
    missing = _html_classes() - built
    assert not missing, f"views not fed the XSS corpus: {sorted(missing)}"
