"""Theme-aware inline styles: JupyterLab's CSS variables (``--jp-*``) with light fallbacks.

Outputs are saved into notebooks and exported to HTML, so styles are inline (no stylesheet to
load) and every colour comes from the theme, falling back to a light palette outside JupyterLab.
"""

from __future__ import annotations

TEXT = "var(--jp-content-font-color0, #000)"
TEXT_MUTED = "var(--jp-ui-font-color2, #616161)"
BORDER = "var(--jp-border-color2, #e0e0e0)"
ERROR = "var(--jp-error-color1, #d32f2f)"
#: The best score of a column: theme text on a tint of the theme's green mixed into its page colour.
BEST = (
    "font-weight:bold;color:var(--jp-content-font-color0, #000);"
    "background-color:color-mix(in srgb, var(--jp-success-color1, #388e3c) 25%, var(--jp-layout-color0, #fff))"
)
STATUS = {
    "pending": "var(--jp-ui-font-color2, #757575)",
    "running": "var(--jp-brand-color1, #1976d2)",
    "succeeded": "var(--jp-success-color1, #388e3c)",
    "failed": "var(--jp-error-color1, #d32f2f)",
    "stopped": "var(--jp-warn-color1, #f57c00)",
}
CELL = f"text-align:left;vertical-align:top;padding:3px 8px;border-bottom:1px solid {BORDER};color:{TEXT}"
NUM_CELL = f"text-align:right;vertical-align:top;padding:3px 8px;border-bottom:1px solid {BORDER};color:{TEXT}"


def badge(status: str) -> str:
    """A status pill legible in any theme: theme text, a coloured border and dot."""
    color = STATUS.get(status, STATUS["pending"])
    return (
        f'<span class="qfnb-status" style="color:{TEXT};border:1px solid {color};border-radius:9px;'
        f'padding:0 7px"><span style="color:{color}">●</span> {status}</span>'
    )

#: Kernel restarted: ipywidgets keeps the old views with their last state but marks each
#: ``.jupyter-widgets-disconnected`` (a red broken-chain icon before every one). Inside qfnb's
#: widgets (root class ``qfnb-live``) this hides those icons and the dead buttons
#: (``qfnb-live-only``) and shows the ``qfnb-offline-note`` instead, so the old cell reads as the
#: static last state it is. Carried by an HTML child of the widget (its CSS travels with it).
OFFLINE_CSS = (
    "<style>"
    ".qfnb-live.jupyter-widgets-disconnected::before,.qfnb-live .jupyter-widgets-disconnected::before"
    "{content:none!important;display:none!important}"
    ".qfnb-live.jupyter-widgets-disconnected .qfnb-live-only{display:none!important}"
    ".qfnb-offline-note{display:none}"
    ".qfnb-live.jupyter-widgets-disconnected .qfnb-offline-note{display:inline}"
    "</style>"
)


def offline_note(text: str) -> str:
    """The CSS above and a line shown only once the kernel that drew the widget is gone."""
    return (f'{OFFLINE_CSS}<span class="qfnb-offline-note" style="color:{TEXT_MUTED}">'
            f"{text}</span>")
