"""Test doubles for the notebook layer (imported by conftest and tests)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from IPython.core.displaypub import CapturingDisplayPublisher

from qfnb._core.http.response import QfResponse
from qfnb.notebook.chat.answer import CellChatRequest, ChatDelta
from qfnb.notebook.chat.conversations import PlatformConversations
from qfnb.trainer.event import Event


class RecordingPublisher(CapturingDisplayPublisher):
    """Keeps every display / update (thread-safe), like a frontend would receive them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()

    def publish(
        self, data: Any, metadata: Any = None, source: Any = None, *, transient: Any = None, update: bool = False
    ) -> None:
        with self.lock:
            self.outputs.append({"data": data, "metadata": metadata, "transient": transient, "update": update})

    def by_display_id(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for o in self.outputs:
            did = (o["transient"] or {}).get("display_id")
            if did:
                out.setdefault(did, []).append(o)
        return out


class FakeChatBackend:
    """A test double of the chat API: streams a scripted answer in chunks and records requests.
    Its named sessions stay in the kernel (``conversations``: a test gives a platform's)."""

    conversations: PlatformConversations | None = None

    def __init__(
        self,
        answer: str | dict[str, str] = "Hello **world**",
        *,
        chunk: int = 3,
        delay: float = 0.0,
        fail: dict[str, BaseException] | None = None,
    ) -> None:
        self.answer = answer
        self.chunk = chunk
        self.delay = delay
        self.fail = fail or {}
        self.requests: list[CellChatRequest] = []
        self.lock = threading.Lock()
        #: when set, every stream waits before its first chunk until this many are open (proves
        #: the streams run at once: one after the other, the first never gets past)
        self.together: int | None = None
        self.opened = 0

    def default_model(self) -> str | None:
        return None

    def where(self) -> str | None:
        return None

    def engine_state(self, request: CellChatRequest, label: str) -> None:
        return None

    async def stream(self, request: CellChatRequest) -> AsyncIterator[ChatDelta]:
        with self.lock:
            self.requests.append(request)
            self.opened += 1
        label = request.model or request.endpoint or ""
        for _ in range(5000):  # a hang guard, not a speed check
            if self.together is None or self.opened >= self.together:
                break
            await asyncio.sleep(0.002)
        else:
            raise RuntimeError(f"only {self.opened} of {self.together} streams were opened together")
        if label in self.fail:
            raise self.fail[label]
        text = self.answer[label] if isinstance(self.answer, dict) else self.answer
        pieces = [text[i : i + self.chunk] for i in range(0, len(text), self.chunk)] if request.stream else [text]
        for n, piece in enumerate(pieces):
            if self.delay:
                await asyncio.sleep(self.delay)
            last = n == len(pieces) - 1
            usage = {"prompt_tokens": 7, "completion_tokens": len(pieces), "total_tokens": 7 + len(pieces)}
            yield ChatDelta(text=piece, usage=usage if last else None, response={"result": piece, "is_end": last})


class FakeEvent(Event):
    """A ``qfnb.trainer.Event`` (Contract 5), given as the doubles name its fields."""

    def __init__(self, action_class: str, action_id: str, action_state: str, description: str = "",
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(action_id, action_state, description, data if data is not None else {},
                         action_class=action_class)


class FakeTrainer:
    """A test double of ``LLMFinetune``: ``run()`` emits Contract 5 events like the real pipeline."""

    def __init__(
        self,
        spec: Any,
        handler: Any,
        *,
        steps: int = 20,
        step_time: float = 0.005,
        fail_at: int | None = None,
        polls_per_step: int = 1,
        gate: threading.Event | None = None,
        checkpoints: bool = False,
    ) -> None:
        self.spec, self.handler, self.gate = spec, handler, gate
        self.checkpoints = checkpoints  # each held-out point is a saved checkpoint (checkpointList)
        self.steps, self.step_time, self.fail_at, self.polls_per_step = steps, step_time, fail_at, polls_per_step
        self.status = "Preceding"
        self.output: dict[str, Any] | None = None
        self.stopped = threading.Event()
        self.stop_calls = 0

    def emit(self, action: str, state: str, desc: str = "", data: dict[str, Any] | None = None) -> None:
        self.handler.dispatch(FakeEvent(action, f"{action}-1", state, desc, data or {}))

    def run(self) -> FakeTrainer:
        from qfnb._core.runtime import sync

        return sync.run(self.arun())

    async def arun(self) -> FakeTrainer:
        self.emit("LoadDataSetAction", "Preceding")
        self.emit("LoadDataSetAction", "Done", "", {"datasets": [{"id": 7}]})
        for _ in range(5000):  # training starts when the test opens the gate (a hang guard)
            if self.gate is None or self.gate.is_set():
                break
            await asyncio.sleep(0.002)
        self.status = "Running"
        curve: list[list[float]] = []
        evals: list[list[float]] = []  # with a validation split (--eval-split): the held-out loss
        split = getattr(self.spec, "eval_split", None)
        t0 = time.monotonic()
        for step in range(1, self.steps + 1):
            if self.stopped.is_set():
                self.status = "Stopped"
                self.emit("TrainAction", "Stopped", "stopped by user")
                return self
            if step == self.fail_at:
                self.status = "Error"
                self.emit("TrainAction", "Error", "CUDA out of memory")
                raise RuntimeError(f"training failed at step {step}")
            await asyncio.sleep(self.step_time)
            curve.append([step, 3.0 / step])
            if split and (step % 4 == 0 or step == self.steps):  # falls, then rises again: over-fitting
                evals.append([step, 1.0 + 2.0 / step ** 0.5 + 0.02 * step])
            for _ in range(self.polls_per_step):
                self.emit(
                    "TrainAction",
                    "Running",
                    "",
                    {
                        "taskId": "task-1",
                        "runStatus": "Running",
                        "runProgress": f"{100 * step // self.steps}%",
                        "currentStep": step,
                        "totalSteps": self.steps,
                        "lossCurve": list(curve),
                        **({"evalLossCurve": list(evals)} if split else {}),
                        **({"checkpointList": [{"step": int(s), "time": "2026-11-25T10:00:00Z",
                                                "trainLoss": round(3.0 / s, 4), "evalLoss": round(v, 4)}
                                               for s, v in evals]} if split and self.checkpoints else {}),
                        "elapsedSeconds": time.monotonic() - t0,
                        "etaSeconds": (self.steps - step) * self.step_time,
                    },
                )
        self.emit("TrainAction", "Done")
        self.emit("ModelPublishAction", "Done", "", {"model_id": "am-42", "model_version_id": "amv-43"})
        self.status = "Done"
        self.output = {"task_id": "task-1", "model_id": "am-42", "model_version_id": "amv-43"}
        return self

    def stop(self) -> None:
        self.stop_calls += 1
        self.stopped.set()


def use_trainer(ip: Any, **kw: Any) -> list[FakeTrainer]:
    """Make ``%qftrain`` in ``ip`` train with a :class:`FakeTrainer` (``kw``: its settings); the
    list it returns fills with each trainer made, in order."""
    made: list[FakeTrainer] = []

    def factory(spec: Any, handler: Any) -> FakeTrainer:
        made.append(FakeTrainer(spec, handler, **kw))
        return made[-1]

    ip.magics_manager.registry["QfnbMagics"].trainer_factory = factory
    return made


def fake_deployer(endpoint: str, deployed: list[Any] | None = None) -> Any:
    """A dashboard's deploy double (``QfnbMagics.deployer``): marks ``endpoint`` deployed for it."""
    from qfnb.model import Service
    from qfnb.notebook.training import _background

    def deployer(dash: Any) -> Any:
        async def deploy() -> Any:
            await dash.deploy_tick({"serviceStatus": "Deploying"})
            service = Service(endpoint=endpoint)
            dash.service = service
            dash.mark_deployed(endpoint)
            if deployed is not None:
                deployed.append(dash.state.task_id)
            return service

        return _background.submit(deploy())

    return deployer


class ScriptedResponse(QfResponse[Any]):
    """The platform's v1 chat answer ``body`` as a response (HTTP 200)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(200, {}, body)


class ScriptedChatBackend:
    """A chat double that answers with the scripted v1 bodies in turn (a ``function_call`` or
    text); the last one repeats. Records the requests."""

    conversations: PlatformConversations | None = None

    def __init__(self, bodies: list[dict[str, Any]], delay: float = 0.0) -> None:
        self.bodies = bodies
        self.delay = delay
        self.requests: list[CellChatRequest] = []

    def default_model(self) -> str | None:
        return None

    def where(self) -> str | None:
        return None

    def engine_state(self, request: CellChatRequest, label: str) -> None:
        return None

    async def stream(self, request: CellChatRequest) -> AsyncIterator[ChatDelta]:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        body = self.bodies[min(len(self.requests), len(self.bodies)) - 1]
        yield ChatDelta(text=body.get("result", ""), usage={"total_tokens": 9, "prompt_tokens": 5,
                                                            "completion_tokens": 4}, response=ScriptedResponse(body))


def function_call(name: str, **args: Any) -> dict[str, Any]:
    """A v1 answer that calls ``name`` with ``args``."""
    return {"result": "", "function_call": {"name": name, "arguments": json.dumps(args), "thoughts": ""}}


def structured_ado(answers: dict[str, dict[str, Any]]) -> Any:
    """A ``ChatCompletion.ado`` double for a schema batch: the JSON answer of the first key found
    in the prompt (``{}`` when none is)."""

    async def ado(self: Any, **kwargs: Any) -> ScriptedResponse:
        text = kwargs["messages"][-1]["content"]
        found = next((v for k, v in answers.items() if k in text), {})
        return ScriptedResponse({"result": json.dumps(found)})

    return ado
