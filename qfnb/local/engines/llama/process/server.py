"""llama.cpp's own server (``llama-server``) as a supervised engine process.

One process per base model, on a private loopback port it binds itself (``--port 0``; it logs the
port it got, so no port is picked here and released for it to take) with a random API key (passed in
the environment, never on the command line), ``--parallel`` slots with continuous batching and the
base model's LoRA adapters loaded unapplied, so each request picks its adapter. The process is
started on first use, restarted if it crashes, stopped when idle, and its log is
``<data_dir>/logs/engine-<name>.log``.

A process starts with every adapter registered so far (``--lora``), a fine-tune's checkpoints all at
once. An adapter registered later is loaded into the running process (``POST /lora-adapters/load``,
which the build adds to the vendored llama.cpp: ``scripts/llama_server_lora_load.patch``), between two
of its decode steps: no request waits for a new process, none is cut. A llama-server without that
route (404) serves it from a new process prepared beside the running one instead: that one keeps
answering what it can (the base model, its adapters) until the new one is ready, then finishes its
own requests and stops. ``starts`` counts the processes started and ``loads`` the adapters loaded
into a running one, so a deploy's engine restarts can be measured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from qfnb.local.engines.llama.process import spawn
from qfnb.local.engines.llama.process.command import (
    BINARY_ENV,
    BUILD_SWITCHES,
    ServerConfig,
    find_binary,
    reported_port,
)
from qfnb.protocol.platform.files import write_private_text

log = logging.getLogger("qfnb.local.engines")

START_TIMEOUT = 120.0
MAX_RESTARTS = 3  # crashes within RESTART_WINDOW before the engine is marked failed
RESTART_WINDOW = 60.0


class EngineUnavailable(RuntimeError):
    """The engine process could not be started (or keeps crashing). ``reached``: the engine had the
    request (it began answering) before it went away, so what it was sent is paid for."""

    def __init__(self, message: str, *, reached: bool = False) -> None:
        super().__init__(message)
        self.reached = reached


class _Instance:
    """One running process, its port, key and adapter list, and how many requests use it."""

    def __init__(self, proc: subprocess.Popen[bytes], key: str, adapters: tuple[Path, ...], port: int = 0) -> None:
        self.proc, self.port, self.key, self.adapters = proc, port, key, adapters
        self.active = 0
        self.retired = False
        #: killed by the watchdog: its decode loop stopped answering (:meth:`LlamaServer.unstick`)
        self.stuck = False
        self.probing = threading.Lock()
        #: loads adapters at runtime (``POST /lora-adapters/load``); None: not asked yet
        self.loads_adapters: bool | None = None
        #: computes a seeded request with batch-invariant kernels (``/props``: ``seed_batch_invariant``,
        #: the build's scripts/llama_server_seed_invariant.patch), so it may share the batch
        self.seeds_invariant = False
        #: drafts the text a request's grammar forces next, in one-line JSON (``/props``: ``spec_grammar``
        #: and ``json_one_line``, the build's scripts/llama_server_grammar_draft.patch)
        self.grammar_drafts = False
        #: holds a stream's tokens and sends a few as one chunk when asked (``/props``: ``stream_pace``, the
        #: build's scripts/llama_server_stream_pace.patch): the platform's pace, kept by the engine itself
        self.paces_streams = False
        #: the model's end-of-sequence token as text (``/props``: ``eos_token``; Qwen's ``<|im_end|>``): what
        #: ends a reply when the model's template names no stop string
        self.eos_token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def serves(self, adapter: Path | None) -> bool:
        """Alive, taking requests, and with ``adapter`` loaded (None: the base model alone)."""
        return not self.retired and self.alive() and (adapter is None or adapter in self.adapters)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass(frozen=True)
class Lease:
    """A running engine to send one request to; release it when the request is over."""

    url: str
    key: str
    adapters: tuple[Path, ...]
    instance: _Instance

    def lora(self, adapter: Path | None) -> list[dict[str, float]]:
        """The request's ``lora`` field: every loaded adapter at scale 0 except ``adapter``."""
        return [{"id": i, "scale": 1.0 if p == adapter else 0.0} for i, p in enumerate(self.adapters)]


class LlamaServer:
    """A supervised ``llama-server`` for one base model (thread-safe, event-loop agnostic)."""

    def __init__(self, config: ServerConfig, binary: Path | None = None) -> None:
        self.config = config
        self.binary = binary or find_binary()
        self._adapters: tuple[Path, ...] = ()
        self._current: _Instance | None = None
        self._retired: list[_Instance] = []
        self._lock = threading.RLock()
        self._start_lock = threading.Lock()
        self._crashes: list[float] = []
        self._closed = False
        self.starts = 0  # processes started (the first one, then one per crash or new adapter set)
        self.loads = 0  # adapters loaded into a running process
        self.state = "stopped"  # stopped | starting | ready | failed
        self.since = time.time()
        self.last_used = time.monotonic()
        self._watch = threading.Thread(target=self._watchdog, name=f"qfnb-engine-watch-{config.name}", daemon=True)
        self._watch.start()

    def add_adapters(self, paths: Sequence[Path]) -> None:
        """Load ``paths`` (LoRA GGUFs) too, together: the first request for one of them that the running
        process lacks starts one process with all of them."""
        with self._lock:
            self._adapters = tuple(dict.fromkeys((*self._adapters, *paths)))

    def config_adapters(self) -> tuple[Path, ...]:
        return self._adapters

    def acquire(self, adapter: Path | None = None) -> Lease:
        """A running process that has ``adapter`` loaded (blocking: may load it into the running process,
        or start one while the running one goes on serving the requests it can)."""
        self.last_used = time.monotonic()
        with self._lock:
            if adapter is not None and adapter not in self._adapters:
                raise EngineUnavailable(f"{self.config.name}: adapter {adapter} is not registered (or its file "
                                        "was removed with its task)")
            if (lease := self._lease(adapter)) is not None:
                return lease
        with self._start_lock:  # one start at a time; others wait for it and use it
            with self._lock:
                if (lease := self._lease(adapter)) is not None:
                    return lease
                # an adapter whose file went (its task was deleted) is not loaded again
                adapters = self._adapters = tuple(a for a in self._adapters if a.is_file())
                if adapter is not None and adapter not in adapters:
                    raise EngineUnavailable(f"{self.config.name}: adapter {adapter} was removed with its task")
                running = self._current
            if adapter is not None and running is not None and self._load(running, adapter):
                with self._lock:
                    if (lease := self._lease(adapter)) is not None:
                        return lease
            inst = self._start(adapters)
            with self._lock:
                inst.active += 1
                return Lease(inst.url, inst.key, inst.adapters, inst)

    def _load(self, inst: _Instance, adapter: Path) -> bool:
        """Load ``adapter`` into the running ``inst`` (under the start lock); False: it cannot load
        adapters at runtime (or is gone), so a new process must serve it."""
        if inst.loads_adapters is False or not inst.serves(None):
            return False
        try:
            reply = httpx.post(f"{inst.url}/lora-adapters/load", headers=inst.headers, json={"path": str(adapter)},
                               timeout=START_TIMEOUT)
        except httpx.TransportError as exc:
            log.warning("engine %s did not answer an adapter load (%s): starting a process with it",
                        self.config.name, exc)
            return False
        if reply.status_code == 404:
            log.info("engine %s loads no adapter at runtime (a llama-server built without "
                     "scripts/llama_server_lora_load.patch): starting a process with %s", self.config.name, adapter)
            inst.loads_adapters = False
            return False
        if reply.status_code != 200:
            with self._lock:  # not passed to a later process either, which would then fail to start
                self._adapters = tuple(a for a in self._adapters if a != adapter)
            raise EngineUnavailable(f"{self.config.name}: the engine could not load adapter {adapter}: "
                                    f"{reply.status_code} {reply.text[:200]}")
        loaded = reply.json().get("id")
        with self._lock:
            inst.loads_adapters = True
            if loaded == len(inst.adapters):  # requests choose an adapter by its position, its id in the engine
                inst.adapters = (*inst.adapters, adapter)
                self.loads += 1
            elif not (isinstance(loaded, int) and 0 <= loaded < len(inst.adapters)
                      and inst.adapters[loaded] == adapter):
                log.warning("engine %s loaded %s as adapter %r, not %d: starting a process with it",
                            self.config.name, adapter, loaded, len(inst.adapters))
                inst.loads_adapters = False
                return False
        log.info("engine %s loaded adapter %s into its running process", self.config.name, adapter)
        return True

    def leased(self, adapter: Path | None = None) -> Lease | None:
        """A lease as :meth:`acquire` gives it, if the running process already serves ``adapter``: nothing
        to start or load, so it does not block (None: call :meth:`acquire`)."""
        with self._lock:
            lease = self._lease(adapter) if adapter is None or adapter in self._adapters else None
        if lease is not None:
            self.last_used = time.monotonic()
        return lease

    def _lease(self, adapter: Path | None) -> Lease | None:
        """A lease on the current process if it serves ``adapter`` (under the lock)."""
        inst = self._current
        if inst is None or not inst.serves(adapter):
            return None
        inst.active += 1
        return Lease(inst.url, inst.key, inst.adapters, inst)

    def release(self, lease: Lease) -> None:
        with self._lock:
            lease.instance.active -= 1
            self.last_used = time.monotonic()
            done = lease.instance.retired and lease.instance.active <= 0
        if done:
            lease.instance.stop()

    def report_failure(self, lease: Lease) -> None:
        """A request could not reach the process: if it died, the next acquire starts another."""
        if not lease.instance.alive():
            self._note_crash(lease.instance)

    def unstick(self, lease: Lease, slot: int | None = None, stretch: float = 1.0) -> bool:
        """A request on ``lease`` (on engine slot ``slot``) was cancelled for no progress or past its
        deadline (its connection closed): does its process obey? It is asked for its slots (``GET
        /slots``, answered by its decode loop between two steps). No answer within
        :meth:`probe_seconds` times ``stretch`` (the machine's load: an honest step takes that many
        times as long on a machine running that many times the work it has CPUs for) means one step
        holds the loop (a grammar that makes the sampler explore without end ignores cancellation
        too); ``slot`` still processing that long after means the cancellation was ignored. Either
        way the process is killed at once (SIGKILL: it would not obey SIGTERM either), so the next
        request starts a fresh one. True: the process was killed as stuck
        (now or by another request's check); False: it obeys, or died of something else."""
        inst = lease.instance
        with inst.probing:  # the requests stalled together ask once
            if inst.stuck:
                return True
            if not inst.alive() or self._obeys(inst, slot, self.probe_seconds * max(1.0, stretch)):
                return False
            inst.stuck = True
        log.warning("engine %s: a request was cancelled and the engine does not obey (its decode loop does not "
                    "answer, or the slot goes on): killing the process (pid %d) and starting another", self.config.name,
                    inst.proc.pid)
        with self._lock:
            inst.retired = True
            if self._current is inst:
                self._current = None
        inst.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            inst.proc.wait(10)
        self._set_state("stopped")
        return True

    @staticmethod
    def _obeys(inst: _Instance, slot: int | None, seconds: float) -> bool:
        """Whether ``inst``'s decode loop answers within ``seconds`` and ``slot`` (if any) stops
        processing by then (a process that cannot be reached obeys: it is gone)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                slots = httpx.get(f"{inst.url}/slots", headers=inst.headers,
                                  timeout=max(0.1, deadline - time.monotonic())).json()
            except httpx.TimeoutException:
                return False
            except (httpx.TransportError, ValueError):
                return True
            busy = any(s.get("id") == slot and s.get("is_processing") for s in slots if isinstance(s, dict))
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    @property
    def probe_seconds(self) -> float:
        """How long a live decode loop may take to answer a probe (one step) on a machine with CPUs
        to spare (:meth:`unstick` stretches it by the load)."""
        return max(2.0, min(10.0, self.config.stall_seconds / 2))

    def post_json(self, path: str, body: dict[str, Any], what: str, timeout: float) -> dict[str, Any]:
        """``body`` POSTed to ``path`` of a running process, and its JSON answer (blocking). An
        engine that does not answer, or answers other than 200, raises :class:`EngineUnavailable`
        saying so of ``what`` (``"the embedding engine"``)."""
        lease = self.acquire()
        try:
            reply = httpx.post(f"{lease.url}{path}", headers=lease.instance.headers, json=body, timeout=timeout)
        except httpx.TransportError as exc:
            self.report_failure(lease)
            raise EngineUnavailable(f"{self.config.name}: {what} did not answer ({exc})") from None
        finally:
            self.release(lease)
        if reply.status_code != 200:
            raise EngineUnavailable(f"{self.config.name}: {what} answered {reply.status_code}: {reply.text[:200]}")
        answer: dict[str, Any] = reply.json()
        return answer

    def _start(self, adapters: tuple[Path, ...]) -> _Instance:
        if self._closed:
            raise EngineUnavailable(f"{self.config.name}: the platform is shutting down")
        if self.binary is None or not self.binary.is_file():
            raise EngineUnavailable("llama-server is not installed (scripts/bootstrap.sh builds it; or set "
                                    f"{BINARY_ENV} to its path)")
        with self._lock:
            recent = [t for t in self._crashes if time.monotonic() - t < RESTART_WINDOW]
            if len(recent) >= MAX_RESTARTS:
                self._set_state("failed")
                raise EngineUnavailable(f"{self.config.name}: the engine crashed {len(recent)} times in the last "
                                        f"{RESTART_WINDOW:.0f} s; see {self.log_path}")
        self._set_state("starting")
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(24)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as logf:
            logf.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.config.name} "
                       f"({len(adapters)} adapters)\n".encode())
            logf.flush()
            offset = os.fstat(logf.fileno()).st_size
            # dies with the platform, even on SIGKILL (spawn.popen: PR_SET_PDEATHSIG); our builds' switches
            # are environment variables, which a llama-server without them ignores (a flag would stop it)
            env = {**os.environ, "LLAMA_API_KEY": key, **BUILD_SWITCHES}
            proc = spawn.popen(self.config.argv(self.binary, adapters), stdin=subprocess.DEVNULL, stdout=logf,
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
        inst = _Instance(proc, key, adapters)
        error = self._wait_ready(inst, offset)
        if error is not None:
            inst.stop()
            self._set_state("failed")
            raise EngineUnavailable(f"{self.config.name}: llama-server did not start: {error} (log: {self.log_path})")
        with self._lock:
            self.starts += 1
            old, self._current = self._current, inst
            if old is not None and self._retire(old):
                threading.Thread(target=old.stop, daemon=True).start()
        self._set_state("ready")
        write_private_text(self.pid_path, str(proc.pid))
        log.info("engine %s ready on 127.0.0.1:%d (%d slots, %d adapters)", self.config.name, inst.port,
                 self.config.slots, len(adapters))
        if not (inst.seeds_invariant or self.config.embedding or self.config.reranking):
            log.warning("engine %s: this llama-server has no batch-invariant kernels (built without scripts/"
                        "llama_server_seed_invariant.patch): a seeded answer repeats alone, but beside other "
                        "requests it may differ", self.config.name)
        if not (inst.grammar_drafts or self.config.embedding or self.config.reranking):
            log.warning("engine %s: this llama-server has no grammar drafts (built without scripts/"
                        "llama_server_grammar_draft.patch): structured answers decode one token a step, and "
                        "their JSON keeps the model's layout", self.config.name)
        return inst

    @property
    def pid_path(self) -> Path:
        return self.config.log_dir / f"engine-{self.config.name}.pid"

    def _wait_ready(self, inst: _Instance, offset: int) -> str | None:
        """Wait for the port the process reports in its log (after ``offset``), then for its health; then
        read which of our builds' switches it took (``/props``)."""
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not inst.alive():
                    return f"exited with code {inst.proc.returncode}"
                if not inst.port:  # the port it reports in its log, once it serves
                    with contextlib.suppress(OSError), self.log_path.open("rb") as fh:
                        fh.seek(offset)
                        inst.port = reported_port(fh.read()) or 0
                with contextlib.suppress(httpx.HTTPError):
                    if inst.port and client.get(f"{inst.url}/health").status_code == 200:
                        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
                            props = client.get(f"{inst.url}/props", headers=inst.headers).json()
                            inst.seeds_invariant = props.get("seed_batch_invariant") is True
                            inst.grammar_drafts = props.get("spec_grammar") is True and \
                                props.get("json_one_line") is True
                            inst.paces_streams = props.get("stream_pace") is True
                            eos = props.get("eos_token")
                            inst.eos_token = eos if isinstance(eos, str) else ""
                        return None
                time.sleep(0.1)
        return f"not ready after {START_TIMEOUT:.0f} s"

    def _set_state(self, state: str) -> None:
        with self._lock:
            if state != self.state:
                self.state, self.since = state, time.time()

    def _note_crash(self, inst: _Instance) -> None:
        with self._lock:
            if self._current is not inst:
                return
            self._current = None
            self._crashes.append(time.monotonic())
        self._set_state("stopped")
        log.warning("engine %s exited unexpectedly (code %s); restarting it (log: %s)", self.config.name,
                    inst.proc.returncode, self.log_path)

    def _watchdog(self) -> None:
        """Restart a crashed process; stop one idle for ``idle_seconds``; reap retired ones."""
        while not self._closed:
            time.sleep(1.0)
            with self._lock:
                inst = self._current
                self._retired = [r for r in self._retired if r.alive() and r.active > 0]
            if inst is None:
                continue
            if not inst.alive():
                self._note_crash(inst)
                try:
                    self.release(self.acquire())  # a process runs again
                except EngineUnavailable as exc:
                    log.warning("%s", exc)
            elif inst.active <= 0 and time.monotonic() - self.last_used > self.config.idle_seconds:
                with self._lock:
                    if self._current is not inst or inst.active > 0:
                        continue
                    self._current = None
                log.info("engine %s idle for %.0f s: stopping it", self.config.name, self.config.idle_seconds)
                inst.stop()
                self._set_state("stopped")

    def unload(self) -> bool:
        """Stop the process now (requests under way finish first); the next request starts one."""
        with self._lock:
            inst, self._current = self._current, None
            if inst is None:
                return False
            idle = self._retire(inst)
        if idle:
            inst.stop()
        self._set_state("stopped")
        log.info("engine %s unloaded on request", self.config.name)
        return True

    def _retire(self, inst: _Instance) -> bool:
        """``inst`` takes no more requests (under the lock); True: none runs, so it may stop now (else
        the last one to end stops it)."""
        inst.retired = True
        if inst.active > 0:
            self._retired.append(inst)
        return inst.active <= 0

    def unload_in(self) -> float | None:
        """Seconds until the idle stop (None: not running, or never unloaded)."""
        inst = self._current
        if inst is None or not inst.alive() or self.config.idle_seconds == float("inf"):
            return None
        if inst.active > 0:
            return self.config.idle_seconds
        return max(0.0, self.config.idle_seconds - (time.monotonic() - self.last_used))

    @property
    def log_path(self) -> Path:
        return self.config.log_dir / f"engine-{self.config.name}.log"

    @property
    def pid(self) -> int | None:
        inst = self._current
        return inst.proc.pid if inst is not None and inst.alive() else None

    @property
    def seeds_invariant(self) -> bool:
        """Whether the running process batches seeded requests with the others (False: none runs)."""
        inst = self._current
        return inst is not None and inst.seeds_invariant

    @property
    def grammar_drafts(self) -> bool:
        """Whether the running process drafts what a request's grammar forces (False: none runs)."""
        inst = self._current
        return inst is not None and inst.grammar_drafts

    @property
    def paces_streams(self) -> bool:
        """Whether the running process keeps a stream's pace itself when asked (False: none runs)."""
        inst = self._current
        return inst is not None and inst.paces_streams

    def close(self) -> None:
        """Stop every process of this engine."""
        self._closed = True
        with self._lock:
            instances = [i for i in (self._current, *self._retired) if i is not None]
            self._current, self._retired = None, []
        for inst in instances:
            inst.stop()
        self.pid_path.unlink(missing_ok=True)
        self._set_state("stopped")
