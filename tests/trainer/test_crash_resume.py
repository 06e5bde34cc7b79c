"""A kernel that dies mid-training (SIGKILL) and a fresh process that resumes the trainer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qfnb._core.config import Config
from qfnb.trainer import LLMFinetune
from tests.fakes.console_cloud import ConsoleCloud

CHILD = """
import sys
from qfnb._core.config import Config
from qfnb.dataset import Dataset
from qfnb.trainer import LLMFinetune, TrainConfig
url = sys.argv[1]
cfg = Config.from_env({}, base_url=url, console_api_base_url=url, iam_base_url=url, bos_endpoint=url + "/bos",
                      access_key="test_access_key", secret_key="test_secret_key", ak="test_ak", sk="test_sk",
                      train_status_polling_interval=0.02, import_status_polling_interval=0.01,
                      release_status_polling_interval=0.01)
t = LLMFinetune(train_type="Fake-Base", config=cfg, train_config=TrainConfig(epoch=1),
                dataset=Dataset.create_from_pyobj([{"prompt": "q", "response": "a"}]))
print(t.id, flush=True)
t.run()
"""


@pytest.mark.sockets  # a child process reaches the fake
def test_resume_after_sigkill_does_not_create_a_second_task(cloud: ConsoleCloud, cfg: Config, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(cache))
    cloud.train_polls = 10_000
    env = {**os.environ, "QIANFAN_CACHE_DIR": str(cache), "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen([sys.executable, "-c", CHILD, cloud.fake.base_url], stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert child.stdout is not None
        trainer_id = child.stdout.readline().strip()
        deadline = time.monotonic() + 60
        while len(cloud.calls("DescribeFineTuningTask")) < 3:
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert len(cloud.calls("CreateFineTuningTask")) == 1
    (task_id,) = cloud.tasks
    cloud.train_polls = cloud.tasks[task_id]["polls"] + 2  # the run finishes soon after the crash
    trainer = LLMFinetune.load(trainer_id, config=cfg)
    assert trainer.status in ("Training", "TrainCreated")
    trainer.resume()
    assert trainer.status == "ModelPublished"
    assert len(cloud.calls("CreateFineTuningTask")) == 1 and len(cloud.calls("CreateFineTuningJob")) == 1
    assert len(cloud.calls("dataset/create")) == 1
    assert trainer.output["model"].task_id == task_id
