"""Scoring a batch job's output without calling any model (issue 23 item 4 meets issue 22): the
``BatchJob`` itself, its output file as the platform wrote it (OpenAI's batch shape, rows in
completion order), and in ``%qfeval --recorded`` the Dataset ``%qfbatch`` returned or its ``-o``
job, by variable name."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell

from qfnb.evaluation import EvaluationManager, ExactMatchEvaluator
from qfnb.resources.batch_job import BatchJob
from tests.fakes.local_platform import ServedPlatform

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "batch"))
from batch_doubles import paced_platform
from platform_helpers import Signer

N = 8
#: the reference matches the engine double's answer ("tiny-chat: <prompt>") on even items only
ROWS = [{"prompt": f"q{i}", "response": f"tiny-chat: q{i}" if i % 2 == 0 else "something else"} for i in range(N)]


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedPlatform]:
    with paced_platform(tmp_path / "data", monkeypatch, delay="0") as platform:
        platform.set_env(monkeypatch)
        yield platform


@pytest.fixture()
def job(served: ServedPlatform) -> BatchJob:
    made = BatchJob.submit([r["prompt"] for r in ROWS], model="tiny-chat")
    assert made.wait(interval=0.05).status == "Done"
    return made


def engine_calls(served: ServedPlatform) -> int:
    return sum(len(e.started) for e in served.registry.paced.values())  # type: ignore[attr-defined]


def test_a_batch_job_and_its_output_file_are_scored_without_a_model(served: ServedPlatform, job: BatchJob,
                                                                    tmp_path: Path) -> None:
    asked = engine_calls(served)
    em = EvaluationManager(local_evaluators=[ExactMatchEvaluator()])
    res = em.eval(dataset=ROWS, recorded={"job": job})
    assert res.metrics["job"]["accuracy"] == pytest.approx(0.5)
    samples = res.samples.sort_values("index")
    assert samples["output"].tolist() == [f"tiny-chat: q{i}" for i in range(N)]  # in the dataset's order

    # the output object as the platform wrote it, rows shuffled (completion order is not input order)
    uri = job.state().view["outputFileUri"]
    text = httpx.get(served.url + "/bos/" + uri[len("bos:/"):], auth=Signer()).text
    lines = text.splitlines()
    assert json.loads(lines[0])["response"]["body"]["choices"][0]["message"]["content"].startswith("tiny-chat: ")
    random.Random(1).shuffle(lines)
    path = tmp_path / "output.jsonl"
    path.write_text("\n".join(lines) + "\n")
    again = em.eval(dataset=ROWS, recorded={"file": str(path)})
    assert again.samples.sort_values("index")["output"].tolist() == samples["output"].tolist()
    cmp = em.eval(dataset=ROWS, recorded={"job": job, "blank": [""] * N}).compare("job", "blank")
    assert cmp.row("job", "accuracy").wins == N // 2
    assert engine_calls(served) == asked  # nothing was asked again

    # a row that failed is an empty answer, and said so
    path.write_text("\n".join(line for line in lines if json.loads(line)["custom_id"] != "3") + "\n")
    holes = em.eval(dataset=ROWS, recorded={"file": str(path)})
    assert holes.samples.sort_values("index")["output"].tolist()[3] == ""
    with pytest.raises(ValueError, match="8 inputs for 3 items"):
        em.eval(dataset=ROWS[:3], recorded={"job": job})


def test_qfeval_recorded_takes_what_qfbatch_returned(served: ServedPlatform) -> None:
    shell = InteractiveShell.instance()
    try:
        shell.extension_manager.load_extension("qfnb")
        shell.user_ns["rows"] = ROWS
        shell.user_ns["prompts"] = [r["prompt"] for r in ROWS]
        shell.user_ns["out"] = shell.run_line_magic("qfbatch", "prompts -m tiny-chat -o job")
        shell.user_ns["blank"] = [""] * N
        asked = engine_calls(served)
        report = shell.run_line_magic("qfeval", "--dataset rows --recorded tuned=out,job,base=blank "
                                                "--metrics exact_match --compare base -o r")
        assert engine_calls(served) == asked
        r = shell.user_ns["r"]
        assert r.metrics["tuned"]["exact_match"] == r.metrics["job"]["exact_match"] == pytest.approx(0.5)
        assert report.comparison.row("tuned", "exact_match").wins == N // 2
    finally:
        InteractiveShell.clear_instance()
