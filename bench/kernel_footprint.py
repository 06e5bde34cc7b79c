"""What the local platform costs the user's process: the daemon vs the old in-process server.

Each case runs in a fresh interpreter (a stand-in for a kernel) on a fresh data dir, with the
real local models: ``import qfnb`` → first chat answer (Qwen2.5), an embedding (MiniLM), then a
2-step LoRA fine-tune (Gemma 3 270M). It prints the time to the first answer and the process's
memory (RSS now and peak) and whether torch/llama_cpp got loaded into it:

- ``in-process``: the platform on a thread of the caller (the previous default; the baseline),
- ``daemon, cold``: no daemon yet: the first call starts one,
- ``daemon, warm``: a second process reusing that daemon.

    .venv/bin/python bench/kernel_footprint.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASE = r"""
import json, sys, time
t0 = time.perf_counter()
import qfnb
if sys.argv[1] == "in-process":  # the platform on a thread of this process, as before the daemon
    import threading, types, uvicorn
    from qfnb._core import config
    from qfnb.local.server.app import create_app
    from qfnb.local.server.listen import bind, url_of
    from qfnb.local.settings import Settings
    from qfnb.protocol.console.model_names import LOCAL_DEFAULT_MODELS
    settings, sock = Settings.from_env(), bind("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    c = settings.credentials
    local = types.SimpleNamespace(base_url=url_of(sock), api_key=c.api_key, secret_key=c.secret_key,
                                  access_key=c.access_key, iam_secret_key=c.iam_secret_key,
                                  default_models=dict(LOCAL_DEFAULT_MODELS))
    config.set_default_backend(lambda: local)
answer = qfnb.ChatCompletion().do(messages=[{"role": "user", "content": "Say hi."}], max_output_tokens=8)
first = time.perf_counter() - t0
qfnb.Embedding().do(texts=["hello", "world"])
steps = 0
if sys.argv[2] == "train":
    from qfnb.dataset import Dataset
    from qfnb.trainer import LLMFinetune, TrainConfig
    rows = [{"prompt": f"What is {i}+{i}?", "response": str(2 * i)} for i in range(8)]
    LLMFinetune(train_type="Gemma-3-270M", dataset=Dataset.create_from_pyobj(rows), model_not_publish=True,
                train_config=TrainConfig(epoch=1, batch_size=4, max_steps=2)).run()
    steps = 2
status = {k: int(v.split()[0]) * 1024 for k, v in
          (line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("VmRSS", "VmHWM")))}
heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("torch", "llama_cpp", "transformers")})
print(json.dumps({"first_answer_s": first, "rss": status["VmRSS"], "peak": status["VmHWM"], "heavy": heavy,
                  "steps": steps}))
"""


def run(mode: str, data_dir: Path, train: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIANFAN_")}
    env.update(QFNB_DATA_DIR=str(data_dir), QIANFAN_CACHE_DIR=str(data_dir / "cache"), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CASE, mode, "train" if train else "-"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from qfnb._core.backend.daemon import stop_daemon

    mib = 2**20
    with tempfile.TemporaryDirectory() as tmp:
        base = run("in-process", Path(tmp) / "inproc", train=True)
        data = Path(tmp) / "daemon"
        try:
            cold = run("daemon", data, train=True)
            warm = run("daemon", data, train=False)
        finally:
            stop_daemon(data, force=True)
    print(f"{'case':<22}{'first answer':>14}{'RSS':>10}{'peak RSS':>10}  heavy modules in the process")
    for name, r in (("in-process (baseline)", base), ("daemon, cold", cold), ("daemon, warm", warm)):
        print(f"{name:<22}{r['first_answer_s']:>12.2f} s{r['rss'] / mib:>7.0f} MiB{r['peak'] / mib:>7.0f} MiB"  # type: ignore[operator]
              f"  {', '.join(r['heavy']) or 'none'}")  # type: ignore[arg-type]
    print(f"kernel RSS after chat + embedding + fine-tune: daemon / in-process = "
          f"{cold['rss'] / base['rss']:.2f}x ({base['rss'] / mib:.0f} -> {cold['rss'] / mib:.0f} MiB)")  # type: ignore[operator]


if __name__ == "__main__":
    main()
