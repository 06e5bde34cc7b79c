"""A test double of the 2026 Qianfan cloud: an account with a v2 API key and IAM keys, no v1 app keys.

:class:`FakeQianfanV2` is a :class:`tests.fakes.cloud.FakeQianfan` (same ASGI app, request capture,
fault injection, ``fake.route(...)`` registration and IAM checks for console handlers) whose
built-in routes are those a new account meets. Shapes were written from Baidu's pages:

* v2 inference, OpenAI-compatible, ``Authorization: Bearer <API key>`` on
  ``https://qianfan.baidubce.com/v2/...``: chat https://cloud.baidu.com/doc/qianfan-api/s/3m7of64lb,
  embeddings https://cloud.baidu.com/doc/qianfan-api/s/Fm7u3ropn, rerankers
  https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Dm6071svf, images (the qianfan-api 图像生成 page,
  OpenAI's ``/images/generations`` shape), Responses https://cloud.baidu.com/doc/qianfan-docs/s/Imkdq47r5
  (guide), https://cloud.baidu.com/doc/qianfan-api/s/vmhejnuy8 (create) and
  https://cloud.baidu.com/doc/qianfan-api/s/Bmhsskbv5 (the response object);
* v2 errors: ``{"error": {"code", "message", "type"}, "id"}`` with the HTTP status. The error-code
  page https://cloud.baidu.com/doc/qianfan/s/Qmh4su56e lists ``invalid_iam_token`` as HTTP 401
  "IAM Certification failed" and ``rate_limit_exceeded`` as HTTP 429; an unknown model answers
  ``invalid_model`` "The model does not exist or you do not have access to it." with HTTP **401**
  (recorded from the live endpoint on 2026-08-31; :attr:`FakeQianfanV2.invalid_model_status`);
* bearer tokens minted by IAM ``GET /v1/BCE-BEARER/token`` (bce-auth-v1 signed with the IAM pair;
  the base class's handler) are accepted beside the API key;
* v1 is refused: ``POST /oauth/2.0/token`` answers ``invalid_client`` / "unknown client id" (the
  account has no v1 app keys), and every v1 inference route under
  ``/rpc/2.0/ai_custom/v1/wenxinworkshop/`` answers v1 error 6 "No permission to access data" (the
  v1 error-code page https://cloud.baidu.com/doc/WENXINWORKSHOP/s/tlmyncueh: the app has no
  permission for the service), or 110 for an ``access_token`` it never issued. Such calls are
  kept in :meth:`FakeQianfanV2.v1_calls`.

Answers are deterministic and derived from the input (a double, not a model): chat says
``echo[<model>]: <last user text>``; one token is one character of text (``prompt_tokens`` is the
length of every message's text, ``completion_tokens`` the answer's), so tests can check usage and
``max_tokens`` truncation exactly.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import math
import re
import struct
import time
import zlib
from collections.abc import Iterable
from typing import Any

from qfnb.protocol.wires.codec.sse import encode_event

from .cloud import PREFIX, Captured, FakeQianfan, Fault, Reply
from .cloud_v2_batches import install_files_batches

__all__ = ["DEFAULT_KEY", "DEFAULT_MODELS", "FakeQianfanV2", "png"]

DEFAULT_KEY = "bce-v3/ALTAK-2026test/0123456789abcdef"

#: model ids a 2026 account can call (tests add their own to ``fake.models``)
DEFAULT_MODELS = frozenset({
    "ernie-4.5-turbo-128k", "ernie-4.5-turbo-32k", "ernie-x1-turbo-32k", "ernie-3.5-8k", "ernie-speed-128k",
    "ernie-lite-8k", "deepseek-v3.2", "qwen3-235b-a22b", "embedding-v1", "bge-large-zh", "bge-large-en", "tao-8k",
    "qwen3-embedding-0.6b", "bce-reranker-base", "irag-1.0", "flux.1-schnell",
})

#: the v1 error a new account's v1 inference call gets (v1 error-code page: code 6)
V1_NO_PERMISSION = {"error_code": 6, "error_msg": "No permission to access data"}
#: the OAuth answer for client credentials the platform does not know
OAUTH_UNKNOWN_CLIENT = {"error": "invalid_client", "error_description": "unknown client id"}

#: per embedding model: (most texts per call, most characters per text), from the embeddings page
_EMBED_LIMITS = {"embedding-v1": (16, 1000), "bge-large-zh": (16, 2000), "bge-large-en": (16, 2000),
                 "tao-8k": (1, 28000)}
_RERANK_MAX_DOCS = 64
_IMAGE_SIDE = 64
_WORDS = re.compile(r"[\u4e00-\u9fff]|[a-z0-9]+")


def tokens(text: str) -> int:
    """The fake's token count of ``text``: one per character."""
    return len(text)


def png(width: int, height: int, rgb: tuple[int, int, int], stripe: tuple[int, int, int]) -> bytes:
    """A real PNG (8-bit RGB, zlib-compressed): ``rgb`` with a diagonal band of ``stripe``."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter type 0 (None)
        for x in range(width):
            row += bytes(stripe if abs(x - y) < max(2, width // 8) else rgb)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


def _text_of(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of parts (``text`` / ``input_text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


class FakeQianfanV2(FakeQianfan):
    """A 2026 account: one v2 API key (:attr:`key`), the IAM pair for console work, no v1 app keys.

    ``fake.models`` (a set) holds the known model ids; ``fake.responses`` the stored Responses;
    ``fake.v1_calls()`` the refused v1 calls; ``fake.mint_token()`` a bearer token as IAM mints one.
    """

    def __init__(self, *, key: str = DEFAULT_KEY, models: Iterable[str] = DEFAULT_MODELS,
                 access_key: str = "test_access_key", secret_key: str = "test_secret_key",
                 verify_signatures: bool = True) -> None:
        self.key = key
        self.models: set[str] = set(models)
        #: HTTP status of the ``invalid_model`` answer (401 as recorded live; set 404 to try a client's other path)
        self.invalid_model_status = 401
        #: stored Responses by id: ``{"response": {...}, "items": [input items of this turn], "chain": [...]}``
        self.responses: dict[str, dict[str, Any]] = {}
        self.images: dict[str, bytes] = {}
        self._v1: list[Captured] = []
        self._ids = itertools.count(1)
        super().__init__(ak="", sk="", access_key=access_key, secret_key=secret_key, bearer_token=key,
                         verify_signatures=verify_signatures)
        #: the Files + Batch routes' state (uploaded files, batches)
        self.files_batches = install_files_batches(self)

    # ------------------------------------------------------------------ helpers for tests
    def v1_calls(self) -> list[Captured]:
        """Every call to a v1 route (OAuth or v1 inference) this fake refused, in order."""
        return list(self._v1)

    def mint_token(self) -> str:
        """A bearer token as ``GET /v1/BCE-BEARER/token`` would mint it (accepted on /v2)."""
        token = f"bce-v3/ALTAK-minted/{len(self.bearer_tokens)}"
        self.bearer_tokens.add(token)
        return token

    def config_kwargs(self, base_url: str | None = None) -> dict[str, Any]:
        """Config kwargs with only the API key and this fake's URLs (and transport, when in-process)."""
        url = base_url or self.base_url
        return {"api_key": self.key, "base_url": url, "console_api_base_url": url, "iam_base_url": url,
                "transport": self.transport}

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def v2_error(self, status: int, code: str, message: str, kind: str = "invalid_request_error") -> Reply:
        """The v2 error body ``{"error": {"code", "message", "type"}, "id"}`` with ``status``."""
        return Reply({"error": {"code": code, "message": message, "type": kind}, "id": self._next_id("as-")}, status)

    def _refuse_auth(self, req: Captured) -> Reply | None:
        """401 ``invalid_iam_token`` unless ``Authorization: Bearer`` carries the key or a minted token."""
        auth = req.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip() in self.bearer_tokens:
            return None
        return self.v2_error(401, "invalid_iam_token", "IAM Certification failed")

    def _refuse_model(self, body: dict[str, Any]) -> Reply | None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.v2_error(400, "invalid_argument", "model is required")
        if model not in self.models:
            return self.v2_error(self.invalid_model_status, "invalid_model",
                                 "The model does not exist or you do not have access to it.")
        return None

    def _admit(self, req: Captured) -> tuple[dict[str, Any], Reply | None]:
        """The JSON body, or the refusal (auth first, then the body, then the model)."""
        refused = self._refuse_auth(req)
        if refused is not None:
            return {}, refused
        body = req.json
        if not isinstance(body, dict):
            return {}, self.v2_error(400, "invalid_argument", "request body must be a JSON object")
        return body, self._refuse_model(body)

    def _reply(self, body: dict[str, Any]) -> Reply:
        return Reply(body, headers=dict(self.inference_headers))

    # ------------------------------------------------------------------ faults in the v2 shape
    def _take_fault(self, req: Captured) -> Fault | None:
        fault = super()._take_fault(req)
        return None if fault is None else dataclasses.replace(fault, path=req.path)  # _fault sees the path

    async def _fault(self, fault: Fault, send: Any) -> None:
        kind = fault.kind
        if not (fault.path or "").startswith("/v2/") or kind == "drop":
            await super()._fault(fault, send)
            return
        headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
        if kind in ("429", "code:18", "code:4", "code:336501", "code:336502"):
            reply = self.v2_error(429, "rate_limit_exceeded", "Rate limit reached, retry later", "rate_limit_exceeded")
        elif kind in ("110", "111"):
            reply = self.v2_error(401, "invalid_iam_token", "IAM Certification failed")
        elif kind.isdigit():
            reply = self.v2_error(int(kind), "internal_error", f"fake HTTP {kind}", "internal_error")
        else:
            reply = self.v2_error(500, "internal_error", f"fake fault {kind}", "internal_error")
        reply.headers.update(headers)
        await self._send(reply, send)

    # ------------------------------------------------------------------ routes
    def _install_defaults(self) -> None:
        # kept from the base: IAM's bearer minting and the console's service list (both IAM-signed)
        self.route("GET", "/v1/BCE-BEARER/token")(self._bearer)
        self.route("POST", "/wenxinworkshop/service/list")(self._service_list)
        # v1, refused
        self.route("POST", "/oauth/2.0/token")(self._oauth_refused)
        self.route("GET", "/oauth/2.0/token")(self._oauth_refused)
        self.route("POST", f"{PREFIX}/*")(self._v1_refused)
        # v2 inference
        self.route("POST", "/v2/chat/completions")(self._chat)
        self.route("POST", "/v2/embeddings")(self._embeddings)
        self.route("POST", "/v2/rerankers")(self._rerankers)
        self.route("POST", "/v2/images/generations")(self._images)
        self.route("GET", "/v2/fake-images/*")(self._image_file)
        self.route("POST", "/v2/responses")(self._responses_create)
        self.route("GET", "/v2/responses/*")(self._responses_get)
        self.route("DELETE", "/v2/responses/*")(self._responses_delete)

    def _oauth_refused(self, req: Captured) -> Reply:
        """``/oauth/2.0/token`` (https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Ilkkrb0i5, Access Token获取):
        a 2026 account has no v1 app (API Key / Secret Key pair), so any client id is unknown."""
        self._v1.append(req)
        return Reply(dict(OAUTH_UNKNOWN_CLIENT), 401)

    def _v1_refused(self, req: Captured) -> Reply:
        """v1 inference (``/rpc/2.0/ai_custom/v1/wenxinworkshop/...``): error 6 "No permission to access
        data" from the v1 error-code page https://cloud.baidu.com/doc/WENXINWORKSHOP/s/tlmyncueh (the
        account never opened the v1 service), or 110 for an ``access_token`` (none was ever issued).
        v1 errors come in an HTTP 200 body."""
        self._v1.append(req)
        if "access_token" in req.params:
            return Reply({"error_code": 110, "error_msg": "Access token invalid or no longer valid"})
        return Reply(dict(V1_NO_PERMISSION))

    # ---------------------------------------------------------------- chat
    def _chat(self, req: Captured) -> Reply:
        """``POST /v2/chat/completions`` (https://cloud.baidu.com/doc/qianfan-api/s/3m7of64lb): OpenAI's
        ``chat.completion`` (``choices[{index, message{role, content}, finish_reason}]``, ``usage``), or
        SSE ``chat.completion.chunk`` events ending ``data: [DONE]``, with a last ``choices: []``
        chunk carrying ``usage`` when ``stream_options.include_usage`` is true.
        ``max_tokens`` / ``max_completion_tokens`` cut the answer (``finish_reason: length``); ``n`` copies it."""
        body, refused = self._admit(req)
        if refused is not None:
            return refused
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.v2_error(400, "invalid_argument", "messages cannot be empty")
        model = str(body["model"])
        last_user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"),
                         messages[-1])
        answer = f"echo[{model}]: {_text_of(last_user.get('content') if isinstance(last_user, dict) else None)}"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        finish = "stop"
        if isinstance(limit, int) and limit < tokens(answer):
            answer, finish = answer[:max(0, limit)], "length"
        raw_n = body.get("n")
        n = raw_n if isinstance(raw_n, int) and raw_n > 0 else 1
        prompt = sum(tokens(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
        usage = {"prompt_tokens": prompt, "completion_tokens": n * tokens(answer),
                 "total_tokens": prompt + n * tokens(answer)}
        rid, created = self._next_id("as-"), int(time.time())
        if body.get("stream"):
            return Reply(sse=self._chat_chunks(rid, created, model, answer, finish, n,
                                               usage if (body.get("stream_options") or {}).get("include_usage")
                                               else None),
                         headers=dict(self.inference_headers))
        choices = [{"index": i, "message": {"role": "assistant", "content": answer}, "finish_reason": finish}
                   for i in range(n)]
        return self._reply({"id": rid, "object": "chat.completion", "created": created, "model": model,
                            "choices": choices, "usage": usage})

    def _chat_chunks(self, rid: str, created: int, model: str, answer: str, finish: str, n: int,
                     usage: dict[str, int] | None) -> list[dict[str, Any] | str]:
        head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        parts_n = max(1, self.stream_chunks)
        size = max(1, -(-len(answer) // parts_n))
        parts = [answer[i:i + size] for i in range(0, len(answer), size)] or [""]
        events: list[dict[str, Any] | str] = []
        for index in range(n):
            events.append({**head, "choices": [{"index": index, "delta": {"role": "assistant", "content": ""},
                                                "finish_reason": None}]})
            events.extend({**head, "choices": [{"index": index, "delta": {"content": part},
                                                "finish_reason": finish if j == len(parts) - 1 else None}]}
                          for j, part in enumerate(parts))
        if usage is not None:
            events.append({**head, "choices": [], "usage": usage})
        events.append("data: [DONE]\n\n")
        return events

    # ---------------------------------------------------------------- embeddings
    def _embeddings(self, req: Captured) -> Reply:
        """``POST /v2/embeddings`` (https://cloud.baidu.com/doc/qianfan-api/s/Fm7u3ropn): ``input`` a
        non-empty list of non-empty strings (a string is taken as one), within the page's per-model
        limits (embedding-v1: 16 texts of ≤1000 characters; bge-large-*: 16 of ≤2000; tao-8k: 1 of
        ≤28000); answers ``object: list``, ``data[{object: embedding, embedding, index}]``, ``usage``.
        Vectors: :meth:`vector` (deterministic, unit length, similar texts near)."""
        body, refused = self._admit(req)
        if refused is not None:
            return refused
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            return self.v2_error(400, "invalid_argument", "input must be a non-empty list of non-empty strings")
        model = str(body["model"])
        most, chars = _EMBED_LIMITS.get(model, (16, 8192))
        if len(texts) > most:
            return self.v2_error(400, "invalid_argument", f"{model}: at most {most} texts per request")
        if any(len(t) > chars for t in texts):
            return self.v2_error(400, "invalid_argument", f"{model}: a text is longer than {chars} characters")
        used = sum(tokens(t) for t in texts)
        return self._reply({"id": self._next_id("as-"), "object": "list", "created": int(time.time()), "model": model,
                            "data": [{"object": "embedding", "embedding": self.vector(t), "index": i}
                                     for i, t in enumerate(texts)],
                            "usage": {"prompt_tokens": used, "total_tokens": used}})

    @staticmethod
    def vector(text: str, dim: int = 16) -> list[float]:
        """The fake's embedding of ``text``: character bigrams hashed into ``dim`` signed buckets, unit length."""
        out = [0.0] * dim
        padded = f" {text} "
        for i in range(len(padded) - 1):
            digest = hashlib.blake2b(padded[i:i + 2].encode(), digest_size=4).digest()
            out[digest[0] % dim] += 1.0 if digest[1] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in out)) or 1.0
        return [round(v / norm, 6) for v in out]

    # ---------------------------------------------------------------- rerankers
    def _rerankers(self, req: Captured) -> Reply:
        """``POST /v2/rerankers`` (https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Dm6071svf): ``query``,
        ``documents`` (non-empty, ≤64, no empty string), ``top_n`` (default: all) → ``object:
        rerank_list``, ``results[{document, relevance_score, index}]`` best first, ``usage``.
        Score: the share of the query's words (CJK characters, ASCII words) found in the document."""
        body, refused = self._admit(req)
        if refused is not None:
            return refused
        query, docs = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not query:
            return self.v2_error(400, "invalid_argument", "query cannot be empty")
        if not isinstance(docs, list) or not docs or not all(isinstance(d, str) and d for d in docs):
            return self.v2_error(400, "invalid_argument", "documents must be a non-empty list of non-empty strings")
        if len(docs) > _RERANK_MAX_DOCS:
            return self.v2_error(400, "invalid_argument", f"documents: at most {_RERANK_MAX_DOCS} texts")
        top_n = body.get("top_n")
        top = len(docs) if not isinstance(top_n, int) or top_n <= 0 else min(top_n, len(docs))
        words = set(_WORDS.findall(query.lower()))
        scored = [(round(len(words & set(_WORDS.findall(d.lower()))) / max(1, len(words)), 6), i, d)
                  for i, d in enumerate(docs)]
        scored.sort(key=lambda s: (-s[0], s[1]))
        used = tokens(query) + sum(tokens(d) for d in docs)
        return self._reply({"id": self._next_id("as-"), "object": "rerank_list", "created": int(time.time()),
                            "model": body["model"],
                            "results": [{"document": d, "relevance_score": s, "index": i} for s, i, d in scored[:top]],
                            "usage": {"prompt_tokens": used, "total_tokens": used}})

    # ---------------------------------------------------------------- images
    def _images(self, req: Captured) -> Reply:
        """``POST /v2/images/generations`` (the qianfan-api 图像生成 page, OpenAI's shape): ``model``,
        ``prompt``, ``n`` (1-4), ``size`` (``WxH``), ``response_format`` ``b64_json`` (default) or
        ``url`` → ``data[{b64_json}]`` or ``data[{url}]``. Every image is a real 64×64 PNG coloured
        from the prompt (:func:`png`), whatever ``size`` says; a URL is served by ``GET /v2/fake-images/``."""
        body, refused = self._admit(req)
        if refused is not None:
            return refused
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return self.v2_error(400, "invalid_argument", "prompt cannot be empty")
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 4:
            return self.v2_error(400, "invalid_argument", "n must be between 1 and 4")
        size = body.get("size", "1024x1024")
        if not isinstance(size, str) or not re.fullmatch(r"\d{2,4}x\d{2,4}", size):
            return self.v2_error(400, "invalid_argument", f"size {size!r} is not WIDTHxHEIGHT")
        fmt = body.get("response_format") or "b64_json"
        if fmt not in ("b64_json", "url"):
            return self.v2_error(400, "invalid_argument", "response_format must be b64_json or url")
        data: list[dict[str, str]] = []
        for i in range(n):
            image = self.image(f"{prompt}#{i}")
            if fmt == "b64_json":
                data.append({"b64_json": base64.b64encode(image).decode()})
            else:
                name = f"{hashlib.sha256(image).hexdigest()[:16]}.png"
                self.images[name] = image
                base = self.base_url or f"http://{req.headers.get('host', 'qianfan.fake')}"
                data.append({"url": f"{base}/v2/fake-images/{name}"})
        return self._reply({"id": self._next_id("as-"), "created": int(time.time()), "data": data})

    @staticmethod
    def image(seed: str) -> bytes:
        """The fake's picture for ``seed``: a 64×64 PNG, colours from its hash."""
        h = hashlib.sha256(seed.encode()).digest()
        return png(_IMAGE_SIDE, _IMAGE_SIDE, (h[0], h[1], h[2]), (255 - h[0], 255 - h[1], 255 - h[2]))

    def _image_file(self, req: Captured) -> Reply:
        """``GET /v2/fake-images/<name>.png``: an image a ``url`` answer pointed at (no auth, as a presigned URL)."""
        image = self.images.get(req.path.rsplit("/", 1)[-1])
        if image is None:
            return self.v2_error(404, "not_found", "no such image")
        return Reply(image, headers={"content-type": "image/png"})

    # ---------------------------------------------------------------- responses
    def _responses_create(self, req: Captured) -> Reply:
        """``POST /v2/responses`` (https://cloud.baidu.com/doc/qianfan-api/s/vmhejnuy8, object:
        https://cloud.baidu.com/doc/qianfan-api/s/Bmhsskbv5): ``input`` (a string or message items),
        ``model``, ``instructions``, ``previous_response_id`` (a stored one: its turns come first),
        ``store`` (default true), ``max_output_tokens``, ``stream`` → a ``response`` object with
        ``output[{type: message, role: assistant, content[{type: output_text, text}]}]`` and
        ``usage{input_tokens, output_tokens, total_tokens}``. The answer says the turn:
        ``echo[<model>] turn <k>: <last user text>``. Streaming sends ``response.created``,
        ``response.output_item.added``, ``response.content_part.added``, ``response.output_text.delta``…,
        ``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done``,
        ``response.completed``."""
        body, refused = self._admit(req)
        if refused is not None:
            return refused
        items = self._input_items(body.get("input"))
        if not items:
            return self.v2_error(400, "invalid_argument", "input cannot be empty")
        history: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            stored = self.responses.get(str(previous))
            if stored is None:
                return self.v2_error(400, "invalid_argument", f"Previous response with id '{previous}' not found.")
            history = [*stored["chain"], *stored["response"]["output"]]
        chain = [*history, *items]
        turn = sum(1 for item in chain if item.get("role") == "user")
        last_user = next((item for item in reversed(items) if item.get("role") == "user"), items[-1])
        model = str(body["model"])
        answer = f"echo[{model}] turn {turn}: {_text_of(last_user.get('content'))}"
        limit = body.get("max_output_tokens")
        incomplete = False
        if isinstance(limit, int) and limit < tokens(answer):
            answer, incomplete = answer[:max(0, limit)], True
        instructions = body.get("instructions")
        used_in = sum(tokens(_text_of(i.get("content"))) for i in chain) + tokens(str(instructions or ""))
        store = body.get("store", True) is not False
        rid = self._next_id("resp_")
        response = {
            "id": rid, "object": "response", "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed", "model": model, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": instructions, "max_output_tokens": limit, "previous_response_id": previous,
            "store": store, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "temperature": body.get("temperature"), "top_p": body.get("top_p"), "metadata": body.get("metadata") or {},
            "text": {"format": {"type": "text"}},
            "output": [{"id": self._next_id("msg_"), "type": "message", "role": "assistant",
                        "status": "incomplete" if incomplete else "completed",
                        "content": [{"type": "output_text", "text": answer, "annotations": []}]}],
            "usage": {"input_tokens": used_in, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": tokens(answer), "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": used_in + tokens(answer)},
        }
        if store:
            self.responses[rid] = {"response": response, "chain": chain}
        if body.get("stream"):
            return Reply(sse=self._response_events(response), headers=dict(self.inference_headers))
        return self._reply(response)

    def _input_items(self, raw: Any) -> list[dict[str, Any]]:
        """``input`` as message items with ids (a string is one user message)."""
        if isinstance(raw, str):
            raw = [{"role": "user", "content": raw}] if raw else []
        if not isinstance(raw, list):
            return []
        items = []
        for item in raw:
            if not isinstance(item, dict) or item.get("type", "message") != "message":
                continue
            content = item.get("content")
            parts = ([{"type": "input_text", "text": content}] if isinstance(content, str)
                     else [p for p in content if isinstance(p, dict)] if isinstance(content, list) else [])
            items.append({"id": self._next_id("msg_"), "type": "message", "role": item.get("role", "user"),
                          "status": "completed", "content": parts})
        return items

    def _response_events(self, response: dict[str, Any]) -> list[dict[str, Any] | str]:
        message = response["output"][0]
        text = message["content"][0]["text"]
        size = max(1, -(-len(text) // max(1, self.stream_chunks)))
        seq = itertools.count()
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        empty_part = {"type": "output_text", "text": "", "annotations": []}
        base = {"item_id": message["id"], "output_index": 0, "content_index": 0}
        raw: list[dict[str, Any]] = [
            {"type": "response.created", "response": pending},
            {"type": "response.in_progress", "response": pending},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {**message, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", **base, "part": empty_part},
            *({"type": "response.output_text.delta", **base, "delta": text[i:i + size]}
              for i in range(0, len(text), size)),
            {"type": "response.output_text.done", **base, "text": text},
            {"type": "response.content_part.done", **base, "part": message["content"][0]},
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {"type": "response.completed" if response["status"] == "completed" else "response.incomplete",
             "response": response},
        ]
        return [encode_event({**event, "sequence_number": next(seq)}, event=event["type"]).decode() for event in raw]

    def _stored(self, req: Captured) -> tuple[str, str, Reply | None]:
        """(response id, rest of the path, refusal) for ``/v2/responses/<id>[/<rest>]``."""
        refused = self._refuse_auth(req)
        rid, _, rest = req.path[len("/v2/responses/"):].partition("/")
        if refused is not None:
            return rid, rest, refused
        if rid not in self.responses:
            return rid, rest, self.v2_error(404, "not_found", f"Response with id '{rid}' not found.")
        return rid, rest, None

    def _responses_get(self, req: Captured) -> Reply:
        """``GET /v2/responses/<id>`` (the stored response object) and ``GET /v2/responses/<id>/input_items``
        (``object: list`` of the chain's items, ``order`` ``desc`` by default, ``first_id``, ``last_id``,
        ``has_more``), from the Responses guide https://cloud.baidu.com/doc/qianfan-docs/s/Imkdq47r5."""
        rid, rest, refused = self._stored(req)
        if refused is not None:
            return refused
        stored = self.responses[rid]
        if rest == "":
            return Reply(stored["response"])
        if rest != "input_items":
            return self.v2_error(404, "not_found", f"no route GET {req.path}")
        items = list(stored["chain"])
        if req.params.get("order", "desc") == "desc":
            items.reverse()
        limit = int(req.params.get("limit", "20"))
        page = items[:limit]
        return Reply({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                      "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})

    def _responses_delete(self, req: Captured) -> Reply:
        """``DELETE /v2/responses/<id>``: forget a stored response → ``{id, object: response, deleted: true}``."""
        rid, _, refused = self._stored(req)
        if refused is not None:
            return refused
        del self.responses[rid]
        return Reply({"id": rid, "object": "response", "deleted": True})
