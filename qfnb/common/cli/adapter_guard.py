"""What guards ``qfnb openai`` and ``qfnb proxy``: their key, their files, and each request's headers.

- The key clients must send comes from the environment or a 0600 file, never argv (``ps`` shows
  argv to every user); with neither, one is generated, stored 0600 in ``<data dir>/adapters``
  (mode 0700) and printed once, as Jupyter does with its token.
- Log files are created 0600 (an existing one is made 0600); every record is redacted of tokens.
- :class:`RequestGuard` (ASGI middleware) refuses, before any route runs, a request whose
  ``Host``/``Origin`` is not allowed (DNS rebinding, browser pages), whose path holds ``..``
  (plain or encoded), whose body is over the platform's cap, or that lacks the key.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

from qfnb.common.cli._shared import CliError
from qfnb.protocol.limits import MAX_BODY_BYTES
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.netguard import path_problem, request_problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: (status, code, message) -> the JSON body in the route's own error shape
Refusal = Callable[[int, str, str], dict[str, Any]]

#: the folder (under the data dir) that holds the adapters' generated keys
ADAPTER_DIR = "adapters"


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (created 0700, or made 0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def read_secret_file(path: Path) -> str:
    """A secret from ``path``, which must be a regular file only its owner can read or write."""
    try:
        info = path.stat()
    except OSError as exc:
        raise CliError(f"cannot read the key file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CliError(f"the key file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise CliError(f"the key file {path} is mode {stat.S_IMODE(info.st_mode):04o}; make it 0600 "
                       f"(chmod 600 {path}): others can read it")
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise CliError(f"the key file {path} is empty")
    return secret


def adapter_secret(name: str, env_var: str, file: Path | None,
                   env: MutableMapping[str, str] | None = None) -> tuple[str, Path | None]:
    """The key of the adapter ``name``: ``file`` (0600), else ``$env_var``, else the stored one,
    else a new one. Returns it and the path it was just written to (None: not new)."""
    env = os.environ if env is None else env
    if file is not None:
        return read_secret_file(file), None
    if env.get(env_var):
        return env[env_var], None
    stored = private_dir(default_data_dir(env) / ADAPTER_DIR) / f"{name}.key"
    try:
        fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return read_secret_file(stored), None
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    return secret, stored


def private_file(path: str | Path) -> int:
    """A file descriptor appending to ``path``, created 0600 (an existing file is made 0600; a link
    is refused). A missing parent folder is created 0700."""
    target = Path(path)
    if not target.parent.exists():
        private_dir(target.parent)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write the log file {target}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)
    return fd


#: what a log line may carry that grants access: query tokens, bearer keys, BCE signatures
_TOKENS = re.compile(r"(?i)(access_token=|authorization=|bearer\s+|bce-auth-v1/)[^\s&\"',;]+")


def redact(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with tokens and the ``known`` secrets replaced by ``***``."""
    for secret in known:
        if secret:
            text = text.replace(secret, "***")
    return _TOKENS.sub(lambda m: m.group(1) + "***", text)


class Redact(logging.Filter):
    """Redacts each record's message (uvicorn's access lines hold the query string)."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        super().__init__()
        self.known = tuple(known)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), self.known), None
        return True


def log_to(log_file: str | None, known: Iterable[str] = ()) -> None:
    """Log INFO to stderr and, when given, to ``log_file`` (0600), every record redacted; uvicorn's
    loggers too."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        handlers.append(logging.StreamHandler(os.fdopen(private_file(log_file), "a", encoding="utf-8")))
    for handler in handlers:
        handler.addFilter(Redact(known))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        # a server started earlier in this process (uvicorn sets these loggers' levels) left its level
        logger.handlers, logger.propagate = list(handlers), False
        logger.setLevel(logging.INFO)


def same_secret(given: str | None, secret: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


def bearer_key(secret: str) -> Callable[[Scope], bool]:
    """A key check: the request's ``Authorization: Bearer`` is ``secret``."""
    def key_ok(scope: Scope) -> bool:
        given = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        return given.startswith("Bearer ") and same_secret(given[len("Bearer "):].strip(), secret)
    return key_ok


class RequestGuard:
    """ASGI middleware: Host/Origin allow-list, path traversal, body cap, key — in that order."""

    def __init__(self, app: ASGIApp, *, refusal: Refusal, key_ok: Callable[[Scope], bool] | None,
                 allowed_hosts: Iterable[str] = (), max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.refusal, self.key_ok = app, refusal, key_ok
        self.allowed_hosts, self.max_body = tuple(allowed_hosts), max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        problem = request_problem(headers.get("host"), headers.get("origin"), self.allowed_hosts)
        if problem:
            await self._refuse(send, 403, "forbidden_host", problem)
            return
        problem = path_problem(raw_path)
        if problem:
            await self._refuse(send, 400, "invalid_path", problem)
            return
        if "transfer-encoding" in headers and "content-length" not in headers:
            await self._refuse(send, 411, "length_required", "send the body with a Content-Length")
            return
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.max_body:
            await self._refuse(send, 413, "body_too_large", f"the body is over {self.max_body} bytes")
            return
        if self.key_ok is not None and not self.key_ok(scope):
            await self._refuse(send, 401, "invalid_api_key", "no or wrong key")
            return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, status: int, code: str, message: str) -> None:
        body = json.dumps(self.refusal(status, code, message)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

