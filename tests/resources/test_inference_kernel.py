"""The sync API inside a real Jupyter kernel (its event loop is running while cells execute)."""

from __future__ import annotations

import json

import pytest

from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_server

__all__ = ["fake", "fake_server"]

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


@pytest.mark.sockets  # the kernel is another process: it reaches the fake over a socket
def test_sync_and_async_calls_in_a_kernel(fake: FakeQianfan) -> None:
    env = json.dumps(fake.env(fake.base_url, "oauth"))
    cells = [
        f"from qfnb import ChatCompletion, Completion\nfrom qfnb._core.config import Config\n"
        f"cfg = Config.from_env({{}}, **{env})\nchat = ChatCompletion(config=cfg)",
        "r = chat.do(messages=[{'role': 'user', 'content': 'sync'}])\nprint(r.result)",
        "print(''.join(c.result for c in chat.do(messages=[{'role': 'user', 'content': 'stream'}], stream=True)))",
        "r = await chat.ado(messages=[{'role': 'user', 'content': 'async'}])\nprint(r.result)",
        "t = Completion(config=cfg).batch_do(['b1', 'b2'], worker_num=2)\nprint([f.result().result for f in t])",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    out = [o["text"].strip() for c in nb.cells[1:] for o in c.outputs if o.get("name") == "stdout"]
    assert out == ["echo[ernie-lite-8k]: sync", "echo[ernie-lite-8k]: stream", "echo[ernie-lite-8k]: async",
                   "['echo[ernie-lite-8k]: b1', 'echo[ernie-lite-8k]: b2']"]
