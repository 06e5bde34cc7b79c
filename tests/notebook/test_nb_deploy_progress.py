"""A deploy's stage bar in a kernel: the widget names the stage and the platform's state, and its
output ends as a static line with the endpoint (what a saved notebook keeps)."""

from __future__ import annotations

from qfnb._core.runtime.stages import StageFeed, StageProgress


def test_stage_bar_widget_names_the_stage_then_ends_static(ip, pub) -> None:  # type: ignore[no-untyped-def]
    stages = ["creating the service", "starting the service"]
    bar = StageProgress(stages, desc="deploy my-tune", mode="widget")
    feed = StageFeed(bar, stages)
    feed.enter("starting the service")
    feed.note("Deploying")
    box = bar.widget
    assert box is not None and "starting the service · Deploying · 1/2" in box.meter.value
    assert box.label.value == "<b>deploy my-tune</b>"
    feed.close(ok=True, detail="serving at endpoint ep_1")
    (outputs,) = pub.by_display_id().values()
    final = outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in final
    assert "serving at endpoint ep_1 · 2/2" in final["text/html"] and box.bar.bar_style == "success"
