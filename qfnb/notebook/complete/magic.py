"""``%qfcomplete [on|off]``: inline completions in JupyterLab / Notebook 7 (docs/completions.md)."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from qfnb._core.record import ledger
from qfnb.notebook.arguments import without_comment
from qfnb.notebook.complete import switch

__all__ = ["CompleteMagics"]


@magics_class
class CompleteMagics(Magics):
    """``%qfcomplete``."""

    @line_magic
    def qfcomplete(self, line: str) -> None:
        """``%qfcomplete [on|off]``: turn the editor's inline completions (ghost text from the local
        coder model or a cloud model) on or off for every notebook of this data dir; with no
        argument, say whether they are on and what they used today."""
        word = without_comment(line).strip().lower()
        if word not in ("", "on", "off"):
            raise UsageError(f"%qfcomplete takes on or off (or nothing: the status), got {line.strip()!r}")
        if word:
            switch.set_enabled(word == "on")
        mine = switch.spent_today(session=ledger.SESSION)
        everyone = switch.spent_today()
        state = "on" if switch.enabled() else "off"
        said = (f"qfnb inline completions: {state} · this notebook today: {mine.calls:,} completions "
                f"({mine.withdrawn:,} withdrawn unshown), {mine.tokens:,} tokens · every notebook today: "
                f"{everyone.calls:,} completions, {everyone.tokens:,} tokens (%qfusage --by job counts the same; "
                "the daily cap is the Jupyter server's QfnbCompletions.daily_tokens)")
        print(said)
