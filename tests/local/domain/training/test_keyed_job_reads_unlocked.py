"""Issue 92 §5: a keyed fine-tuning job create (one store transaction) holds no store lock while it reads its
training data: the run's rows are checked, counted and written to its job dir before the store's first write
(the probe's other requests waited 8.1 s on a 48 MiB file)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from platform_helpers import bearer
from starlette.testclient import TestClient

from qfnb.local.domain.training import fine_tunes
from qfnb.protocol.wires.qianfan import batch
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER

CHAT = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                        {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(6)).encode()


def test_a_keyed_job_reads_its_rows_with_the_store_free(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {"Authorization": f"Bearer {bearer(client)}"}
    file_id = client.post(batch.FILES, data={"purpose": "fine-tune"}, files={"file": ("t.jsonl", CHAT)},
                          headers=headers).json()["id"]
    store = client.app.state.platform.store  # type: ignore[attr-defined]
    written_meanwhile: list[bool] = []
    real = fine_tunes.count_rows

    def read_while_another_writes(*args: Any, **kw: Any) -> int:
        done: list[int] = []
        writer = threading.Thread(target=lambda: done.append(store.insert("datasets", {"name": "meanwhile"})["id"]))
        writer.start()
        writer.join(5)  # a write that waits for this create's lock waits out the join
        written_meanwhile.append(bool(done))
        return real(*args, **kw)

    monkeypatch.setattr(fine_tunes, "count_rows", read_while_another_writes)
    sent = client.post("/v1/fine_tuning/jobs", headers={**headers, IDEMPOTENCY_HEADER: "key-read"},
                       json={"model": "Tiny-Chat", "training_file": file_id})
    assert sent.status_code == 200, sent.text
    assert written_meanwhile == [True], "another write waited for the job's transaction while it read its rows"
    runs = store.all("runs")
    assert len(runs) == 1 and runs[0]["containerId"] == store.all("ft_jobs")[-1]["id"]
    assert runs[0]["rows"] == 6
