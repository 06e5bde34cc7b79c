"""%qfeval reports and %qfimage inline images."""

from __future__ import annotations

import base64
import struct
import zlib

import pandas as pd
import pytest
from IPython.core.error import UsageError

from qfnb.evaluation.results.result import EvaluationResult
from qfnb.notebook.chat.images import ImageResult
from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.evaluation.report import EvalReport


def result(tag: str, bleu: float, rouge: float) -> EvaluationResult:
    samples = pd.DataFrame(
        {
            "llm": [tag, tag],
            "index": [0, 1],
            "input": ["q1", "q2"],
            "reference": ["a1", "a2"],
            "output": ["o1", "o2"],
            "error": [None, None],
            "bleu": [bleu, bleu],
            "rouge_l": [rouge, rouge],
        }
    )
    return EvaluationResult({tag: {"bleu": bleu, "rouge_l": rouge}}, samples)


def test_qfeval_single_result(ip) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["res"] = result("base", 0.125, 0.5)
    report = ip.run_line_magic("qfeval", "res")
    assert isinstance(report, EvalReport)
    assert repr(report) == ("Evaluation — 1 model(s)\n       bleu  rouge_l\nllm                 \n"
                            "base 0.1250   0.5000\n"
                            "base: bleu 0.12 (95% CI 0.12–0.12, 2 items)\n"
                            "base: rouge_l 0.50 (95% CI 0.50–0.50, 2 items)")  # each model's own score, its CI
    html = report._repr_mimebundle_()["text/html"]
    assert 'class="qfnb-eval"' in html and "data:image/png;base64," in html and "samples (first 2 of 2)" in html


def test_qfeval_compares_base_and_tuned(ip) -> None:  # type: ignore[no-untyped-def]
    ip.user_ns["runs"] = {"base": result("m", 0.1, 0.2), "tuned": result("m", 0.4, 0.6)}
    report = ip.run_line_magic("qfeval", "runs --chart bleu")
    assert list(report.metrics.index) == ["base", "tuned"]
    assert report.chart_metrics == ["bleu"]
    assert report.chart_png().startswith(b"\x89PNG")
    assert "tuned 0.4000" in repr(report)
    assert {"base:m/output", "tuned:m/output", "input"} <= set(report.samples.columns)
    html = report.to_html()
    assert html.count('class="qfnb-best"') == 2  # the best value of each metric (bleu, rouge_l)


def test_qfeval_errors(ip) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="usage"):
        ip.run_line_magic("qfeval", "")
    with pytest.raises(UsageError, match="cannot evaluate 'nope'"):
        ip.run_line_magic("qfeval", "nope")
    ip.user_ns["x"] = 3
    with pytest.raises(TypeError, match="expected an EvaluationResult"):
        ip.run_line_magic("qfeval", "x")
    ip.user_ns["res"] = result("base", 0.1, 0.2)
    with pytest.raises(ValueError, match="unknown metric"):
        ip.run_line_magic("qfeval", "res --chart accuracy")


def png(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * w for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_image_result_inline_png() -> None:
    body = {"data": [{"object": "image", "b64_image": base64.b64encode(png(4, 3)).decode(), "index": 0}]}
    img = ImageResult.from_response(body, prompt="a red square", model="sd")
    data, meta = img._repr_mimebundle_()
    assert base64.b64decode(data["image/png"]) == png(4, 3)
    assert meta == {"image/png": {"width": 4, "height": 3}}
    assert data["text/plain"] == "<1 image(s) from sd: 4x3 · prompt 'a red square'>"
    two = ImageResult([png(2, 2), png(2, 2)], prompt="<b>")
    html = two._repr_mimebundle_()[0]["text/html"]
    assert html.count("<img") == 2 and 'alt="&lt;b&gt;"' in html


def test_qfimage_platform_error_is_clear(ip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Broken:
        def __init__(self, model: str | None = None) -> None:
            pass

        def do(self, **kw):  # type: ignore[no-untyped-def]
            raise RuntimeError("the image server ran out of memory")

    import qfnb.resources

    monkeypatch.setattr(qfnb.resources, "Text2Image", Broken)
    with pytest.raises(QfnbCellError, match="out of memory"):
        ip.run_line_magic("qfimage", "a cat")
    with pytest.raises(UsageError, match="prompt"):
        ip.run_line_magic("qfimage", "")


def test_qfimage_shows_response(ip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = []

    class Fake:
        def __init__(self, model: str | None = None) -> None:
            self.model = model

        def do(self, **kw):  # type: ignore[no-untyped-def]
            calls.append((self.model, kw))
            return {"data": [{"b64_image": base64.b64encode(png(8, 8)).decode(), "index": 0}]}

    import qfnb.resources

    monkeypatch.setattr(qfnb.resources, "Text2Image", Fake)
    ip.user_ns["animal"] = "cat"
    out = ip.run_line_magic("qfimage", "-m sd --size 512x512 -o r a {animal}")
    assert calls == [("sd", {"prompt": "a cat", "size": "512x512"})]  # -n not given: the platform's default
    assert isinstance(out, ImageResult) and out.images == [png(8, 8)] and ip.user_ns["r"] is out.response
    ip.run_line_magic("qfimage", "-n 2 a dog")
    assert calls[-1] == (None, {"prompt": "a dog", "n": 2})
    with pytest.raises(UsageError, match=r"^-n must be in \[1, 4\], got 5$"):  # the wire's rule, before sending
        ip.run_line_magic("qfimage", "-n 5 a dog")
    assert len(calls) == 2


def test_qfimage_without_an_image_engine_says_what_to_do_and_lets_run_all_go_on(ip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from qfnb.errors import APIError
    from qfnb.notebook.chat.images import NoImageEngine

    class Offline:
        def __init__(self, model: str | None = None) -> None:
            pass

        def do(self, **kw):  # type: ignore[no-untyped-def]
            raise APIError(336005, "API name not exist")

    import qfnb.resources

    monkeypatch.setattr(qfnb.resources, "Text2Image", Offline)
    result = ip.run_cell("%qfimage -o img a cat", store_history=True)
    assert result.success  # a notice, not an error: Run All goes on past the cell
    shown = result.result
    assert isinstance(shown, NoImageEngine) and ip.user_ns["img"] is None
    text = shown._repr_mimebundle_()[0]["text/plain"]
    assert "336005" not in text and text.count(". ") == 0 and text.endswith("again.")  # one sentence
    assert "qfnb models add --name NAME --engine URL --role text2image" in text
    assert "QFNB_TEXT2IMAGE_MODEL_DIR" in text


def test_qfeval_plans_from_a_dict_of_runs_as_it_compares_them(ip) -> None:  # type: ignore[no-untyped-def]
    """``%qfeval RUNS --compare base --plan D`` on ``{name: result}``: the runs are combined first (one
    model per name, paired by item), as ``--compare`` combines them."""

    def run(scores: list[float]) -> EvaluationResult:
        n = len(scores)
        samples = pd.DataFrame({"llm": ["m"] * n, "index": range(n), "input": [f"q{i}" for i in range(n)],
                                "reference": ["r"] * n, "output": ["o"] * n, "error": [None] * n, "bleu": scores})
        return EvaluationResult({"m": {"bleu": sum(scores) / n}}, samples)

    ip.user_ns["runs"] = {"base": run([0.1, 0.3, 0.2, 0.5, 0.1, 0.4]), "tuned": run([0.4, 0.5, 0.3, 0.9, 0.3, 0.6])}
    report = ip.run_line_magic("qfeval", "runs --compare base --plan 0.1")
    assert [p.models for p in report.plan.plans] == [("tuned", "base")] and report.plan.metric == "bleu"
    assert report.plan.pilot_items == 6 and report.comparison is not None
