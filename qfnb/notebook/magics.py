"""IPython magics: ``%%qfchat``, ``%qftrain``, ``%qfeval``, ``%qfimage`` (glue only).

``%load_ext qfnb`` registers :class:`QfnbMagics`; its settings are traitlets, so
``%config QfnbMagics.default_model = "Qwen2.5-Coder-0.5B-Instruct"`` works, as does
``c.QfnbMagics.stream = False`` in ``ipython_config.py``. The work lives in small IPython-free
modules (``chat``, ``_interp``) and the widget modules; this file parses and dispatches.
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class, no_var_expand
from traitlets import Bool, Float, Int, Unicode

from qfnb.notebook import notices
from qfnb.notebook._checks import check_var, image_options, split_csv
from qfnb.notebook._interp import InterpolationError, interpolate
from qfnb.notebook._ipython import (
    argument,
    context_matcher,
    line_cell_magic,
    line_magic,
    magic_arguments,
    magic_parser,
    option_arguments,
    sampling_arguments,
)
from qfnb.notebook.arguments import ChatArgs, EvalArgs, ImageArgs, TrainArgs
from qfnb.notebook.chat import answer as chat
from qfnb.notebook.chat.images import generate
from qfnb.notebook.chat.saved_prompts import saved_prompt_text
from qfnb.notebook.chat.sessions import DEFAULT_SESSION
from qfnb.notebook.complete import magic as complete_magic
from qfnb.notebook.data import batch as batchjob
from qfnb.notebook.data import insight as insight_view
from qfnb.notebook.data import stress as stress_report
from qfnb.notebook.evaluation.arguments import QFEVAL_ARGUMENTS
from qfnb.notebook.ledger import traces, usage
from qfnb.notebook.magic_options import IMAGE_OPTIONS
from qfnb.notebook.models import discovery
from qfnb.notebook.sampling import OPTIONS
from qfnb.notebook.training import launcher, qftrain
from qfnb.notebook.training.qftrain import QFTRAIN_ARGUMENTS

if TYPE_CHECKING:  # pragma: no cover
    from IPython.core.completer import CompletionContext, SimpleMatcherResult
    from IPython.core.interactiveshell import InteractiveShell


log = logging.getLogger("qfnb.notebook.magics")
#: ``-t/--temperature`` (the spec's), whose default ``%config QfnbMagics.temperature`` sets
TEMPERATURE = next(option for option in OPTIONS if option.field == "temperature")


def parse_argstring(magic: Callable[..., Any], line: str) -> argparse.Namespace:
    """Parse a magic line POSIX-style (IPython's own splitter keeps the quotes); a misspelled
    option gets "did you mean"."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse arguments: {exc}") from exc
    parser = magic_parser(magic)
    try:
        return parser.parse_args(argv)
    except UsageError as exc:
        raise UsageError(discovery.did_you_mean(str(exc), discovery.option_strings(parser))) from None


@magics_class
class QfnbMagics(Magics):
    """qfnb's notebook magics. Settings: ``%config QfnbMagics``."""

    default_model = Unicode("", help="Chat model used when -m is not given ('' = the platform default).").tag(
        config=True
    )
    temperature = Float(None, allow_none=True, help=f"The default of {TEMPERATURE.label}: {TEMPERATURE.help}").tag(
        config=True)
    stream = Bool(True, help="Stream answers token by token into the output.").tag(config=True)
    interpolate = Bool(True, help="Replace {name} in prompts with variables from the namespace.").tag(config=True)
    max_history = Int(5, help="Previous exchanges of a session sent with each prompt.").tag(config=True)
    history_chars = Int(6000, help="The most characters of a session's history sent with each prompt: the "
                                   "oldest exchanges are left out first, whole (a tool cell's results count; "
                                   "about 4 characters a token in English, 1 in Chinese; 0: no limit).").tag(
        config=True)
    tool_history = Int(0, help="Previous exchanges of its session a --tools/--mcp cell sends (at most max_history; "
                               "0: its question alone). Sent earlier exchanges, the 1.5B tool model answered later "
                               "questions from them or from nothing, without calling the tool (bench/"
                               "syllabus_agents.py: 2 of 5 right, against 5 of 5 asked alone).").tag(config=True)
    update_interval = Float(0.1, help="Seconds between redraws of a streaming answer.").tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.sessions = chat.SessionStore()
        self.chat_backend: chat.ChatBackend = chat.ResourcesBackend()
        self.trainer_factory: Any = None  # tests inject a fake; None = qfnb.trainer.LLMFinetune
        self.dashboards: dict[str, Any] = {}
        self.attach_options: dict[str, Any] = {}  # tests inject fetch/stop doubles for --attach
        self.deployer: Any = None  # a dashboard's deploy (None: the platform's; tests inject a double)
        self.eval_progress: Any = True  # %qfeval's Contract 8 progress (True = the stock bar)
        self.list_models: Any = discovery.list_models  # tests inject a double
        self.names = discovery.NameCache(lambda: self.list_models())  # names for Tab completion and -m

    @property
    def user_ns(self) -> dict[str, Any]:
        if self.shell is None:
            raise UsageError("qfnb magics need an IPython shell")
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    def fill_braces(self, text: str) -> str:
        """``text`` with its ``{name}`` placeholders filled from the namespace (a usage error if one is unset)."""
        try:
            return interpolate(text, self.user_ns)
        except InterpolationError as exc:  # nothing is sent with an unfilled placeholder
            raise UsageError(str(exc)) from None

    # ------------------------------------------------------------------ %%qfchat
    @no_var_expand
    @magic_arguments()
    @argument("-m", "--model", action="append", help="Model name(s); comma-separated for side-by-side answers.")
    @argument("--endpoint", action="append", help="Custom endpoint(s) of deployed services, instead of -m.")
    @argument("-s", "--session",
              help="A named conversation the platform keeps (it survives kernel and platform restarts; each cell "
                   "sends only its prompt). Cells without -s share 'default', kept in the kernel (its recent turns "
                   "are sent along).")
    @argument("--reset", action="store_true", help="Forget the session's history before this prompt (a named "
                                                   "session's turns are deleted from the platform).")
    @argument("--continue", dest="carry", action="store_true",
              help="Send the session's turns to a model other than the one they were with (by default a "
                   "different -m starts a new thread of the session, and says so).")
    @argument("--system", help="System prompt (persona) for this call.")
    @argument("--prompt", help="A prompt saved on the platform, rendered with the name=value words given after it.")
    @sampling_arguments
    @argument("-o", "--output", help="Store the answer (str() is its text; .response the raw response) here; "
                                      "with --json/--schema the validated object.")
    @argument("--json", action="store_true", help="The answer must be a JSON object (response_format json_object).")
    @argument("--schema", help="NAME of a pydantic model class or JSON-schema dict the answer must match (strict).")
    @argument("--tools", help="Comma-separated notebook functions the model may call (their schemas from type "
                              "hints and docstrings).")
    @argument("--mcp", action="append", default=[], metavar="URL|COMMAND",
              help="An MCP server whose tools the model may call: a URL (streamable HTTP) or a command line "
                   "(stdio), quoted; repeatable. Asked before each call as --tools are.")
    @argument("--mcp-timeout", type=float, metavar="SECONDS",
              help="With --mcp: the most seconds one tool call may take (default 120; for every server: "
                   "qfnb.agents.mcp_client.configure(call_timeout=...)).")
    @argument("--yes", action="store_true", help="With --tools/--mcp: run each call without asking.")
    @argument("--max-steps", type=int, default=5,
              help="With --tools/--mcp: the most model calls before a final answer.")
    @argument("--rerun-tools", action="store_true",
              help="With --tools/--mcp: run a replayed answer's tool calls again (by default they give the "
                   "results recorded when they ran, so Run All repeats no side effect).")
    @argument("--no-interp", action="store_true", help="Send {braces} verbatim (no variable interpolation).")
    @argument("--no-stream", action="store_true", help="Wait for the whole answer instead of streaming.")
    @argument("--fresh", action="store_true",
              help="Ask the model again instead of replaying the cached answer (%%qfcache: the cache itself).")
    @argument("command", nargs="*", help="Line form only: models | sessions | history [NAME] | reset [NAME].")
    @line_cell_magic
    def qfchat(self, line: str, cell: str | None = None) -> Any:
        """Chat with a model; the cell is the prompt.

        Cells without ``-s`` share the session ``default``, kept in the kernel: each prompt carries
        that session's last ``max_history`` exchanges (``%config QfnbMagics.max_history = 0`` sends
        none), and the footer says so ("session default · 2 turns in context"). ``-s NAME`` is a
        conversation the platform keeps (a Responses-API chain): each cell sends only its prompt,
        and the conversation outlives kernel and platform restarts; a new kernel re-running the
        notebook replays each cell that matches the stored turn at its place (no call), and a new
        prompt continues the conversation. ``--reset`` forgets the session
        first; ``%qfchat reset [NAME]`` forgets one (no name: the kernel's), ``%qfchat
        sessions|history [NAME]`` show them (a named session's history from the platform).
        ``-m`` takes any name ``%qfmodels`` lists, a deployed endpoint included."""
        if self.interpolate and "--no-interp" not in line:
            line = self.fill_braces(line)  # brace-safe, unlike IPython's own line expansion
        args = ChatArgs.of(parse_argstring(self.qfchat, line))
        if args.prompt:
            return self._chat_cell(args, saved_prompt_text(args.prompt, args.command, cell or ""))
        if cell is None:
            return self._chat_command(args)
        if args.command:
            raise UsageError(f"unexpected arguments to %%qfchat: {' '.join(args.command)!r}")
        return self._chat_cell(args, cell)

    def _chat_command(self, args: ChatArgs) -> Any:
        cmd, *rest = args.command or ["sessions"]
        if cmd == "models":
            return self._models()
        if cmd == "sessions":
            names = self.sessions.names()
            return chat.SessionList([(n, len(self.sessions.get(n).exchanges)) for n in names])
        name = rest[0] if rest else args.session
        kept = self.chat_backend.conversations
        if cmd == "history":
            if name is not None and kept is not None:
                messages, model = kept.messages(name)
                if messages:
                    return chat.SessionHistory(chat.ChatSession.from_messages(name, messages, model))
            return chat.SessionHistory(self.sessions.get(name or DEFAULT_SESSION))
        if cmd == "reset":  # no name: every session of the kernel
            self.sessions.reset(name)
            if name is not None and kept is not None:
                kept.forget(name)
            return None
        raise UsageError(f"unknown %qfchat command {cmd!r}; use models, sessions, history [NAME] or reset [NAME]")

    def _chat_cell(self, args: ChatArgs, cell: str) -> Any:
        if args.tools or args.mcp:
            # deferred: loads the HTTP client (`%load_ext qfnb` does not)
            from qfnb.notebook.chat.tools import run_tools_cell

            return run_tools_cell(self, args, cell)
        from qfnb.notebook.chat.cell import run_chat_cell  # deferred: loads the HTTP client (`%load_ext qfnb` does not)

        return run_chat_cell(self, args, cell)

    # ------------------------------------------------------------------ %qfmodels
    @line_magic
    def qfmodels(self, line: str = "") -> Any:
        """List the chat / embedding models and this platform's endpoints, with what serves them."""
        if line.strip():
            raise UsageError("%qfmodels takes no arguments")
        return self._models()

    def _models(self) -> discovery.ModelList:
        listing: discovery.ModelList = self.list_models()
        self.names.set(listing)
        return listing

    def complete(self, line: str, token: str) -> list[str] | None:
        """Tab completion for a qfnb magic line (None: the line is not a qfnb magic's)."""
        head = line.lstrip().split(" ", 1)[0].lstrip("%")
        magic = {"qfchat": self.qfchat, "qfeval": self.qfeval, "qftrain": self.qftrain}.get(head)
        if magic is None:
            return None

        def names(kind: str) -> list[str]:
            if kind == "metric":
                # deferred: loads pandas (`%load_ext qfnb` does not)
                from qfnb.notebook.evaluation.metric_words import METRICS

                return list(METRICS)
            listing = self.names.get(wait=0.5)
            if listing is None:
                return []
            if kind == "endpoint":
                return listing.names("endpoint")
            if head == "qftrain":  # --base: what can be fine-tuned
                return listing.names("chat") + listing.names("completion")
            # -m / --models: whatever %qfmodels lists that can chat, deployed endpoints included
            return listing.names("chat", chat=True) + listing.names("completion", chat=True) + listing.names("endpoint")

        return discovery.complete_line(line, token, magic_parser(magic), names)

    # ------------------------------------------------------------------ %qftrain
    @QFTRAIN_ARGUMENTS
    @line_magic
    def qftrain(self, line: str) -> Any:
        """Fine-tune: with options launch a job + live dashboard; without, show the launcher."""
        args = TrainArgs.of(parse_argstring(self.qftrain, line))
        check_var(args.output, "-o/--output")
        return qftrain.handle_magic(self, args, line.strip())

    # ------------------------------------------------------------------ %qfeval
    @no_var_expand
    @QFEVAL_ARGUMENTS
    @line_magic
    def qfeval(self, line: str) -> Any:
        """Evaluate models on a dataset (``--models ... --dataset ...``) or show a result (``%qfeval VAR``):
        styled metrics/samples tables and a comparison chart."""

        if self.interpolate:  # --dataset {path}: brace-safe, an undefined name is an error; {input} is the item's
            line = self.fill_braces(re.sub(r"(?<!\{)\{input\}(?!\})", "{{input}}", line))
        args = EvalArgs.of(parse_argstring(self.qfeval, line))
        chart = split_csv([args.chart])
        # deferred: the run and the stored report load pandas (`%load_ext qfnb` does not)
        from qfnb.notebook.evaluation import qfeval as forms

        if args.models or args.endpoint or args.dataset or args.recorded or args.prompts:
            if args.result:
                raise UsageError(f"%qfeval: give a result variable ({args.result!r}) or --models/--dataset, not both")
            check_var(args.output, "-o/--output")
            return forms.run_report(self, args, chart, line, watch=batchjob.watch)
        if not args.result:
            raise UsageError(
                "usage: %qfeval [--models M1,M2] --dataset DATA [--metrics ...] [-o VAR]   (run an evaluation;\n"
                "       without --models: the default chat model)\n"
                "       %qfeval RESULT_VAR   (show an EvaluationResult, or a dict name -> result)"
            )
        try:
            value = eval(args.result, self.user_ns)  # the user's own expression, like %timeit
        except Exception as exc:
            raise UsageError(f"%qfeval: cannot evaluate {args.result!r}: {exc}") from exc
        return forms.stored_report(value, args, chart)

    def run_line(self, line: str) -> object:
        """Run a printed magic line (``%qfeval ...``) in this kernel, as the plan's full-run button does."""
        assert self.shell is not None
        name, _, rest = line.lstrip("%").partition(" ")
        return self.shell.run_line_magic(name, rest)

    # ------------------------------------------------------------------ %qfimage
    @no_var_expand
    @magic_arguments()
    @argument("-m", "--model", help="Text-to-image model.")
    @option_arguments(IMAGE_OPTIONS)
    @argument("-o", "--output", help="Store the response in this variable.")
    @argument("prompt", nargs="*", help="The prompt (or use %%qfimage with the prompt as the cell).")
    @line_cell_magic
    def qfimage(self, line: str, cell: str | None = None) -> Any:
        """Generate image(s) from a prompt and show them inline."""
        args = ImageArgs.of(parse_argstring(self.qfimage, line))
        check_var(args.output, "-o/--output")
        prompt = (cell if cell is not None else " ".join(args.prompt)).strip()
        if not prompt:
            raise UsageError("%qfimage needs a prompt")
        if self.interpolate:
            prompt = self.fill_braces(prompt)
        try:
            options = image_options(args.options)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        result = generate(prompt, model=args.model, options=options)
        if args.output:
            self.user_ns[args.output] = result.response
        return result


def _matcher(magics: QfnbMagics) -> Callable[[CompletionContext], SimpleMatcherResult]:
    from IPython.core.completer import SimpleCompletion

    @context_matcher()
    def qfnb_matcher(context: CompletionContext) -> SimpleMatcherResult:
        line = context.line_with_cursor
        if not line.lstrip().startswith("%"):
            first = context.full_text.split("\n", 1)[0]  # only a cell's magic line completes
            if not (first.startswith("%%qf") and context.full_text.startswith(line)):
                return {"completions": []}
        found = magics.complete(line, context.token)
        if found is None:
            return {"completions": []}
        return {"completions": [SimpleCompletion(text=c, type="qfnb") for c in found], "suppress": True}

    return qfnb_matcher


def _republish(magics: QfnbMagics) -> Callable[..., None]:
    def post_run_cell(*_: Any) -> None:
        """A job that ended in the background published its final state from qfnb's loop; publish it
        once more from the kernel thread, so every output of it (and the saved notebook) is final."""
        for dash in list(magics.dashboards.values()):
            try:
                dash.republish()
            except Exception:  # a display nicety: never break the user's cell
                log.debug("republishing a dashboard failed", exc_info=True)

    return post_run_cell


def load_ipython_extension(ipython: InteractiveShell) -> None:
    magics = QfnbMagics(shell=ipython)
    ipython.register_magics(magics)
    launcher.register(ipython)  # a form knows its cell (what it launched before a restart)
    ipython.events.register("post_run_cell", _republish(magics))
    usage.register(ipython)
    notices.register(ipython)  # a renamed or substituted model: one line under the cell, not a warning
    stress_report.register(ipython)  # a stress test's table with its chart
    insight_view.register(ipython)  # a dataset's insight: tables and distributions
    ipython.register_magics(batchjob.BatchMagics(ipython, settings=magics))  # %qfbatch
    ipython.register_magics(traces.TraceMagics)  # %qftrace
    ipython.register_magics(complete_magic.CompleteMagics)  # %qfcomplete
    completer = getattr(ipython, "Completer", None)
    if completer is not None:
        completer.custom_matchers.append(_matcher(magics))


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Magics cannot be unregistered individually; the notices' warning handler is put back."""
    notices.unregister(ipython)
