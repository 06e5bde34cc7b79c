"""The cell form of ``%%qfchat``: check the options, build one request per model, stream the
answers into one output (with their provenance in its metadata) and keep the session's history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from IPython.core.error import UsageError

from qfnb.notebook._checks import answer_shape, check_var, sampling_options, split_csv
from qfnb.notebook._interp import prompt_template
from qfnb.notebook._ipython import DisplayHandle, live_display
from qfnb.notebook.arguments import ChatArgs
from qfnb.notebook.chat import answer as chat
from qfnb.notebook.chat import requests as chat_requests
from qfnb.notebook.chat import runner
from qfnb.notebook.chat.sessions import DEFAULT_SESSION
from qfnb.notebook.errors import QfnbCellError, QfnbInterrupted
from qfnb.notebook.models import discovery
from qfnb.resources.structured import AnswerSchema
from qfnb.resources.where import connection_hint

Target = tuple[str | None, str | None]
#: sampling options the Responses API has no field for (a named session's turns go there)
_NOT_IN_RESPONSES = {"top_k": "--top-k", "penalty_score": "--penalty-score"}


class ChatCellHost(Protocol):
    """What a chat cell reads of the magics that run it (``QfnbMagics`` has it): their settings,
    sessions, backend and namespace."""

    @property
    def temperature(self) -> float | None: ...
    @property
    def interpolate(self) -> bool: ...
    @property
    def stream(self) -> bool: ...
    @property
    def max_history(self) -> int: ...
    @property
    def history_chars(self) -> int: ...
    @property
    def tool_history(self) -> int: ...
    @property
    def update_interval(self) -> float: ...
    @property
    def default_model(self) -> str: ...
    @property
    def sessions(self) -> chat.SessionStore: ...
    @property
    def chat_backend(self) -> chat.ChatBackend: ...
    @property
    def names(self) -> discovery.NameCache: ...
    @property
    def user_ns(self) -> dict[str, Any]: ...
    def fill_braces(self, text: str) -> str: ...


@dataclass(frozen=True)
class CellRequests:
    """What one cell sends: a request per target, the prompt as sent and as written."""

    requests: list[chat.CellChatRequest]
    prompt: str
    template: dict[str, Any]
    targets: list[Target]


def build_cell_requests(magics: ChatCellHost, args: ChatArgs, cell: str,
                        body: dict[str, Any] | None = None, *, kept: bool = True,
                        max_history: int | None = None) -> CellRequests | None:
    """Check the options and build the cell's requests (None: ``--reset`` with an empty cell).
    ``kept``: a named session goes on the platform (a tool loop's stays in the kernel);
    ``max_history``: the earlier exchanges sent (None: ``magics.max_history``)."""
    check_var(args.output, "-o/--output")
    try:
        sampling = sampling_options(args.sampling, temperature=magics.temperature)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # -s NAME: the platform keeps the conversation (a backend without one: the kernel does)
    conversations = magics.chat_backend.conversations if kept and args.session is not None else None
    named = conversations is not None
    session = args.session or DEFAULT_SESSION
    refused = [option for name, option in _NOT_IN_RESPONSES.items() if name in sampling.fields()]
    if named and refused:
        raise UsageError(f"{', '.join(refused)} cannot be used with -s {session}: a named session's turns go to the "
                         "platform's Responses API, which has no such field (use -t/--top-p, or no -s)")
    targets, default_name = _targets(magics, args)
    if args.reset:
        magics.sessions.reset(session)
        if conversations is not None:
            for target in targets:
                conversations.forget(chat_requests.session_of(session, target, len(targets) > 1))
    prompt = cell.strip()
    if not prompt:
        if args.reset:
            return None
        raise UsageError("%%qfchat needs a prompt in the cell body")
    interpolated = magics.interpolate and not args.no_interp
    template = prompt_template(prompt, interpolated=interpolated)
    if interpolated:
        prompt = magics.fill_braces(prompt)
    requests = chat_requests.build_requests(
        targets, prompt, sessions=magics.sessions, session=session,
        max_history=magics.max_history if max_history is None else max_history, max_chars=magics.history_chars or None,
        default_name=default_name, where=magics.chat_backend.where(), sampling=sampling,
        system=args.system, stream=magics.stream and not args.no_stream, fresh=args.fresh, body=body,
        carry=args.carry, conversations=conversations)
    return CellRequests(requests, prompt, template, targets)


def run_chat_cell(magics: ChatCellHost, args: ChatArgs, cell: str) -> Any:
    """Run one ``%%qfchat`` cell for ``magics`` (its sessions, backend and settings)."""
    shape = answer_shape(magics.user_ns, args.json, args.schema)  # a bad NAME is refused before anything is sent
    built = build_cell_requests(magics, args, cell,
                                {"response_format": shape.response_format} if shape is not None else None)
    if built is None:
        return None
    requests, prompt, template, targets = built.requests, built.prompt, built.template, built.targets
    multi = len(targets) > 1
    handle = live_display({"text/plain": "…"}, raw=True)

    def on_update(answers: list[chat.CellAnswer]) -> None:
        data, meta = chat.render_answers(answers)
        meta["qfnb"]["template"] = template
        handle.update(data, raw=True, metadata=meta)

    try:
        answers = runner.run_chat(magics.chat_backend, requests, on_update, interval=magics.update_interval)
    except QfnbInterrupted as exc:  # Kernel -> Interrupt: keep the partial answer(s), one line
        if args.output and exc.answers:
            magics.user_ns[args.output] = {a.model: a for a in exc.answers} if multi else exc.answers[0]
        raise
    _keep(magics, args, targets, prompt, answers, store=shape is None)
    _raise_if_all_failed(answers, handle)
    if shape is not None:
        _keep_objects(magics, args, shape, answers)
    return None


def _keep_objects(magics: ChatCellHost, args: ChatArgs, shape: AnswerSchema,
                  answers: list[chat.CellAnswer]) -> None:
    """Validate each answer; ``-o`` holds the object(s) (by model side by side). One that does not
    parse or validate is a cell error naming the model and why."""
    objects: dict[str, Any] = {}
    for a in answers:
        if a.error is not None:
            continue
        try:
            objects[a.model] = shape.validate(a.text)
        except ValueError as exc:
            raise QfnbCellError(f"{a.model}: {exc}", title="qfchat: the answer is not the asked object") from None
    if args.output:
        magics.user_ns[args.output] = objects if len(answers) > 1 else next(iter(objects.values()))


def _raise_if_all_failed(answers: list[chat.CellAnswer], handle: DisplayHandle) -> None:
    """One clear cell error when no model answered (a partial answer stays shown)."""
    failed = [a for a in answers if a.error is not None]
    if not failed or len(failed) < len(answers):
        return
    if not any(a.text for a in answers):
        handle.update({"text/plain": ""}, raw=True)
    first = failed[0]

    raise QfnbCellError(f"{first.model}: {chat.error_line(first)}{connection_hint(first.error)}",
                        title="qfchat failed") from first.error


def _targets(magics: ChatCellHost, args: ChatArgs) -> tuple[list[Target], str | None]:
    """The ``(model, endpoint)`` pairs to ask, and the default model's name when none was named."""
    models, endpoints = split_csv(args.model), split_csv(args.endpoint)
    listing = magics.names.get(wait=3.0) if models else None
    try:  # -m takes any name %qfmodels lists, a deployed service's endpoint included
        targets: list[Target] = [discovery.resolve_name(m, listing) for m in models]
        targets += [(None, e) for e in endpoints]
    except discovery.AmbiguousName as exc:
        raise UsageError(str(exc)) from None
    if targets:
        return targets, None
    if magics.default_model:
        return [(magics.default_model, None)], None
    return [(None, None)], magics.chat_backend.default_model()


def _keep(magics: ChatCellHost, args: ChatArgs, targets: list[Target], prompt: str,
          answers: list[chat.CellAnswer], *, store: bool = True) -> None:
    """Record each good answer in its session's history (a named session's is on the platform
    already), and (``store``) the answer(s) in ``-o``."""
    multi = len(targets) > 1
    for target, answer in zip(targets, answers, strict=True):
        if answer.error is None and (args.session is None or magics.chat_backend.conversations is None):
            name = chat_requests.session_of(args.session or DEFAULT_SESSION, target, multi)
            magics.sessions.get(name).record(prompt, answer.text)
    if args.output and store:
        magics.user_ns[args.output] = {a.model: a for a in answers} if multi else answers[0]
