"""A test double of the cloud's OpenAI-compatible Files + Batch API (v2, API-key bearer auth), as
Baidu documents it: cloud.baidu.com/doc/qianfan/s/Oml4r78ea (the guide) and
cloud.baidu.com/doc/qianfan-api/s/xmk297s1a (``POST /v2/batches``).

:func:`install_files_batches` registers on a :class:`~tests.fakes.cloud.FakeQianfan`:

* ``POST /v2/files`` (multipart, ``purpose=batch``), ``GET /v2/files/{id}`` and ``/{id}/content``;
* ``POST /v2/batches`` (``input_file_id``, ``endpoint``, ``completion_window``, ``metadata``),
  ``GET /v2/batches`` (``limit``/``after``, newest first), ``GET /v2/batches/{id}``,
  ``POST /v2/batches/{id}/cancel``.

A batch advances one step per read of it (``validating`` → ``in_progress``, half its rows answered
→ ``completed``), so progress is observable; its rows run through ``answer`` (default: an echo chat
completion whose usage counts the text), and a row that is not a chat request (no ``messages``) or
whose ``answer`` raises goes to the error file. Every call checks the bearer as ``_chat_v2`` does.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qfnb._core.config import Config

from .cloud import Captured, FakeQianfan, Reply

Answer = Callable[[dict[str, Any]], dict[str, Any]]

#: a 2026 account's v2 API key (the only credential the Files + Batch route needs)
V2_KEY = "bce-v3/ALTAK-test/secret"


def key_only_batch_config(app: FakeQianfan) -> Config:
    """A Config for ``app`` with the v2 key alone (no v1 keys) and fast retries."""
    return Config.from_env({}, api_key=V2_KEY, base_url=app.base_url, console_api_base_url=app.base_url,
                           iam_base_url=app.base_url, transport=app.transport,
                           llm_api_retry_backoff_factor=0.01, llm_api_retry_jitter=0.01)


def echo_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A chat completion echoing the last message, its usage the texts' lengths."""
    text = str(body["messages"][-1].get("content", ""))
    answer = f"echo[{body.get('model')}]: {text}"
    return {"id": "as-fake-batch", "object": "chat.completion", "created": 1, "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(text), "completion_tokens": len(answer),
                      "total_tokens": len(text) + len(answer)}}


@dataclass
class FilesBatchesDouble:
    """The double's state: uploaded and written files, batches, and each batch's rows still to run."""

    fake: FakeQianfan
    answer: Answer = echo_answer
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    done: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1_700_000_000))

    # ---- auth / helpers ---------------------------------------------------------------------------
    def _denied(self, req: Captured) -> Reply | None:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.fake.bearer_tokens:
            return Reply({"error": {"code": "invalid_iam_token", "message": "IAM Certification failed"}}, 401)
        return None

    @staticmethod
    def _missing(what: str, ident: str) -> Reply:
        return Reply({"error": {"code": "not_found", "message": f"{what} {ident} not found",
                                "type": "invalid_request_error"}}, 404)

    def _file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        ident = f"file-fake{next(self._ids)}"
        self.files[ident] = {"id": ident, "object": "file", "bytes": len(content), "created_at": next(self.clock),
                             "filename": filename, "purpose": purpose, "_content": content}
        return self.files[ident]

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # ---- files -----------------------------------------------------------------------------------
    def post_files(self, req: Captured) -> Reply:
        if (denied := self._denied(req)) is not None:
            return denied
        boundary = re.search(r"boundary=([^;]+)", req.headers.get("content-type", ""))
        if req.path.rstrip("/") != "/v2/files" or boundary is None:
            return Reply({"error": {"code": "invalid_request", "message": "a multipart upload is expected"}}, 400)
        fields: dict[str, str] = {}
        content, filename = b"", "upload.jsonl"
        for part in req.raw.split(b"--" + boundary.group(1).strip('"').encode())[1:-1]:
            head, _, data = part.strip(b"\r\n").partition(b"\r\n\r\n")
            name = re.search(rb'name="([^"]*)"', head)
            fname = re.search(rb'filename="([^"]*)"', head)
            if name and name.group(1) == b"file":
                content, filename = data, (fname.group(1).decode() if fname else filename)
            elif name:
                fields[name.group(1).decode()] = data.decode()
        if fields.get("purpose") != "batch":
            return Reply({"error": {"code": "invalid_request", "message": "purpose must be batch"}}, 400)
        return Reply(self._public(self._file(content, filename, "batch")))

    def get_files(self, req: Captured) -> Reply:
        if (denied := self._denied(req)) is not None:
            return denied
        parts = req.path.strip("/").split("/")  # v2 files {id} [content]
        found = self.files.get(parts[2]) if len(parts) >= 3 else None
        if found is None:
            return self._missing("file", parts[2] if len(parts) >= 3 else "")
        if parts[-1] == "content":
            return Reply(found["_content"], headers={"content-type": "application/octet-stream"})
        return Reply(self._public(found))

    # ---- batches ---------------------------------------------------------------------------------
    def post_batches(self, req: Captured) -> Reply:
        if (denied := self._denied(req)) is not None:
            return denied
        parts = req.path.strip("/").split("/")
        if len(parts) == 4 and parts[3] == "cancel":
            return self._cancel(parts[2])
        body = req.json or {}
        source = self.files.get(str(body.get("input_file_id")))
        if source is None:
            return self._missing("file", str(body.get("input_file_id")))
        if body.get("endpoint") != "/v2/chat/completions" or not body.get("completion_window"):
            return Reply({"error": {"code": "invalid_request", "message": "endpoint or completion_window"}}, 400)
        ident = f"batch-fake{next(self._ids)}"
        rows = [json.loads(line) for line in source["_content"].decode().splitlines() if line.strip()]
        self.batches[ident] = {
            "id": ident, "object": "batch", "endpoint": body["endpoint"], "input_file_id": source["id"],
            "completion_window": body["completion_window"], "status": "validating", "created_at": next(self.clock),
            "in_progress_at": None, "completed_at": None, "cancelled_at": None, "output_file_id": None,
            "error_file_id": None, "errors": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata")}
        self.pending[ident], self.done[ident] = rows, ([], [])
        return Reply(self.batches[ident])

    def get_batches(self, req: Captured) -> Reply:
        if (denied := self._denied(req)) is not None:
            return denied
        parts = req.path.strip("/").split("/")
        if len(parts) >= 3:
            batch = self.batches.get(parts[2])
            if batch is None:
                return self._missing("batch", parts[2])
            self._advance(batch)
            return Reply(batch)
        newest = list(reversed(self.batches.values()))
        after = req.params.get("after")
        if after in self.batches:
            newest = newest[[b["id"] for b in newest].index(after) + 1:]
        page = newest[:int(req.params.get("limit") or 20)]
        return Reply({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                      "last_id": page[-1]["id"] if page else None, "has_more": len(newest) > len(page)})

    def _cancel(self, ident: str) -> Reply:
        batch = self.batches.get(ident)
        if batch is None:
            return self._missing("batch", ident)
        if batch["status"] in ("validating", "in_progress"):
            batch["status"], batch["cancelling_at"] = "cancelling", next(self.clock)
        return Reply(batch)

    def _advance(self, batch: dict[str, Any]) -> None:
        """One step per read: validating → in_progress (half the rows run) → completed (the rest);
        cancelling → cancelled (what ran stays in the output)."""
        rows = self.pending[batch["id"]]
        if batch["status"] == "validating":
            batch.update(status="in_progress", in_progress_at=next(self.clock))
            batch["request_counts"]["total"] = len(rows)
            self._run(batch, rows[: len(rows) // 2])
            del rows[: len(rows) // 2]
        elif batch["status"] == "in_progress":
            self._run(batch, rows)
            rows.clear()
            self._finish(batch, "completed")
        elif batch["status"] == "cancelling":
            self._finish(batch, "cancelled")

    def _run(self, batch: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        output, errors = self.done[batch["id"]]
        for row in rows:
            cid, body = row.get("custom_id"), row.get("body")
            request_id = f"req-{batch['id']}-{cid}"
            try:
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
                    raise ValueError("body.messages is required (a non-empty list)")
                answer = self.answer(body)
            except Exception as exc:  # a row's failure is data in the error file
                errors.append({"id": request_id, "custom_id": cid, "error": None, "response": {
                    "status_code": 400, "request_id": request_id,
                    "body": {"error": {"code": "invalid_request", "message": str(exc)}}}})
                batch["request_counts"]["failed"] += 1
                continue
            output.append({"id": request_id, "custom_id": cid, "error": None,
                           "response": {"status_code": 200, "request_id": request_id, "body": answer}})
            batch["request_counts"]["completed"] += 1

    def _finish(self, batch: dict[str, Any], status: str) -> None:
        output, errors = self.done[batch["id"]]
        batch["status"], batch[f"{status}_at"] = status, next(self.clock)
        if output:
            batch["output_file_id"] = self._file(_jsonl(output), f"{batch['id']}_output.jsonl", "batch_output")["id"]
        if errors:
            batch["error_file_id"] = self._file(_jsonl(errors), f"{batch['id']}_error.jsonl", "batch_output")["id"]


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def install_files_batches(fake: FakeQianfan, answer: Answer | None = None) -> FilesBatchesDouble:
    """Register the Files + Batch routes on ``fake`` (a plain ``FakeQianfan()`` or the v2 double);
    ``answer`` answers each row's chat body (default :func:`echo_answer`). Returns the double's state."""
    double = FilesBatchesDouble(fake, answer or echo_answer)
    fake.route("POST", "/v2/files*")(double.post_files)
    fake.route("GET", "/v2/files*")(double.get_files)
    fake.route("POST", "/v2/batches*")(double.post_batches)
    fake.route("GET", "/v2/batches*")(double.get_batches)
    return double
