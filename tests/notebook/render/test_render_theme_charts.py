"""The notebook's shared rendering (:mod:`qfnb.notebook.render`): theme-aware status pills and the loss chart."""

from __future__ import annotations

from qfnb.notebook.render import charts, theme


def test_a_status_pill_takes_its_status_colour_and_an_unknown_one_the_pending_colour() -> None:
    assert theme.STATUS["failed"] in theme.badge("failed") and "failed</span>" in theme.badge("failed")
    assert theme.STATUS["pending"] in theme.badge("paused")


def test_the_loss_chart_is_a_png_that_grows_with_what_it_draws() -> None:
    bare = charts.loss_chart([(1, 2.0), (2, 1.5), (3, 1.2)])
    full = charts.loss_chart([(1, 2.0), (2, 1.5), (3, 1.2)], eval_points=[(2, 1.6), (3, 1.4)],
                             checkpoints=[(2, 1.6), (3, 1.4)], best=3, score=("accuracy", [(2, 0.5), (3, 0.75)]))
    assert bare.startswith(b"\x89PNG\r\n\x1a\n") and full.startswith(b"\x89PNG\r\n\x1a\n")
    assert bare != full
