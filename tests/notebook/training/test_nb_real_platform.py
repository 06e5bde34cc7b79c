"""The magics against the real embedded platform with real local models (marked ``real_model``):
``%qfeval`` on Qwen2.5 chat, and ``%qftrain`` → dashboard Deploy button → chat and evaluate the
deployed endpoint (Gemma 3 270M, a 3-step LoRA: the point is the deploy path, not learning)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from nb_doubles import RecordingPublisher

from qfnb.notebook.training.dashboard import TrainingDashboard

pytestmark = pytest.mark.real_model

TRAIN_TIMEOUT_S = float(os.environ.get("QFNB_E2E_TRAIN_TIMEOUT", "900"))
DEPLOY_TIMEOUT_S = 300.0
QA = [
    {"prompt": "What is the capital of France? Answer with one word only.", "response": "Paris"},
    {"prompt": "What is 2 + 3? Answer with the number only.", "response": "5"},
    {"prompt": "Who wrote Hamlet?", "response": "William Shakespeare."},
    {"prompt": "What colour is the sky?", "response": "Blue."},
]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_qfeval_runs_a_real_model(ip, embedded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "qa.jsonl", QA)
    t0 = time.monotonic()
    report = ip.run_line_magic("qfeval", f"--models Qwen2.5-Coder-0.5B-Instruct --dataset {data} --limit 2 "
                                         "--metrics exact_match,rouge_l -t 0.01 --max-tokens 12 -o res")
    res = ip.user_ns["res"]
    samples = res.samples
    assert len(samples) == 2 and samples["error"].isna().all(), samples["error"].tolist()
    assert all(isinstance(o, str) and o.strip() for o in samples["output"])
    metrics = res.metrics["Qwen2.5-Coder-0.5B-Instruct"]
    assert metrics["exact_match"] >= 0.5, samples["output"].tolist()  # it knows Paris and 2 + 3
    assert report.chart_metrics == ["exact_match", "rouge_l"] and report.chart_png().startswith(b"\x89PNG")
    print(f"%qfeval, 1 real model x 2 rows: {time.monotonic() - t0:.1f}s")


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.5)


@pytest.mark.slow
def test_dashboard_deploy_button_serves_the_finetuned_model(  # type: ignore[no-untyped-def]
    ip, pub: RecordingPublisher, embedded, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", QA)
    t0 = time.monotonic()
    ip.run_line_magic("qftrain", f"--dataset {data} --steps 3 --epochs 1 --batch-size 2 --max-seq-len 64 -o dash")
    dash = ip.user_ns["dash"]
    assert isinstance(dash, TrainingDashboard)
    state = dash.wait(timeout=TRAIN_TIMEOUT_S)
    t_train = time.monotonic() - t0
    assert state.status == "succeeded", (state.error, list(state.log))
    assert state.step == 3 and len(state.loss) == 3 and state.model_id
    assert state.service is None, "nothing is deployed before the button is clicked"
    assert dash.deploy_button.layout.display is None, "Deploy is offered once training succeeded"

    dash.deploy_button.click()
    assert dash.deploy_button.description == "Deploying…"
    wait_until(lambda: dash.state.service or "deploy failed" in dash.log_view.value, DEPLOY_TIMEOUT_S, "deploy")
    t_deploy = time.monotonic() - t0 - t_train
    endpoint = dash.state.service
    assert endpoint and "deploy failed" not in dash.log_view.value, dash.log_view.value
    assert dash.service.endpoint == endpoint and dash.service.get_status().value == "Deployed"
    # the dashboard shows the endpoint: widget, log, and the saved snapshot / text/plain
    assert f"endpoint <code>{endpoint}</code>" in dash.result.value
    assert f"deployed as {endpoint}" in dash.log_view.value
    assert dash.deploy_button.layout.display == "none"
    # the static final state, republished right after the service is set (from the deploy thread)
    def snapshot_data() -> dict[str, str]:
        return pub.by_display_id()[dash.handle.display_id][-1]["data"]

    wait_until(lambda: f"service {endpoint}" in snapshot_data()["text/plain"], 10, "the deployed snapshot")
    snapshot = snapshot_data()
    assert f"service {endpoint}" in snapshot["text/plain"] and endpoint in snapshot["text/html"]
    assert f"%%qfchat -m {endpoint}" in snapshot["text/html"]  # the next step to copy (one name per model)

    # a chat through the deployed endpoint, as the user would write it
    ip.run_cell_magic("qfchat", f"--endpoint {endpoint} --max-tokens 8 --no-stream -o answer", "What is 2 + 2?")
    answer = ip.user_ns["answer"]
    assert answer.error is None and answer.text.strip(), answer
    assert answer.usage and answer.usage["completion_tokens"] >= 1

    # and the tuned endpoint next to its base in one evaluation (the brief's example)
    report = ip.run_line_magic("qfeval", f"--models Gemma-3-270M,{endpoint} --dataset {data} --limit 2 "
                                         "--metrics rouge_l --max-tokens 8 -o cmp")
    cmp = ip.user_ns["cmp"]
    assert list(cmp.metrics_df.index) == ["Gemma-3-270M", endpoint]
    assert cmp.samples["error"].isna().all(), cmp.samples["error"].tolist()
    assert list(report.metrics.index) == ["Gemma-3-270M", endpoint]
    print(f"train {t_train:.1f}s, deploy {t_deploy:.1f}s, chat+eval {time.monotonic() - t0 - t_train - t_deploy:.1f}s")
