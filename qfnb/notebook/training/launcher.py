"""The fine-tune launcher: pick a base model and a dataset, set hyperparameters, Launch.

It lives beside ``train`` (not in ``widgets/``) because it drives ``train.launch``; the ``%qftrain``
dispatch (:mod:`.qftrain`) shows this form when a line gives no recipe.
Bounds come from :data:`qfnb.notebook.training.run.BOUNDS` (the same checks as the magic's options);
the dashboard of the launched job replaces the form's result area, so nothing is displayed from
a button callback. Shown with :meth:`FinetuneLauncher.show`, the launcher's output becomes the
job's final static state when the job ends (a saved notebook keeps no form that needs a kernel).
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from pathlib import Path
from typing import Any

import ipywidgets as w

from qfnb.notebook._ipython import DisplayHandle, display
from qfnb.notebook.models import discovery
from qfnb.notebook.render import theme
from qfnb.notebook.render._ipywidgets import SafeHTML, VBox
from qfnb.notebook.training.run import (
    BOUNDS,
    DEFAULT_BASE,
    MAX_EVAL_SPLIT,
    TrainerFactory,
    TrainSpec,
    console_keys_problem,
    launch,
)
from qfnb.protocol.console import train_formats
from qfnb.protocol.console.checkpoints import DEFAULT_CHECKPOINTS
from qfnb.protocol.console.train_modes import MODE_TABLE
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.files import write_private_json
from qfnb.resources.safe_html import clean, escape
from qfnb.trainer.configs import TrainConfig

log = logging.getLogger("qfnb.notebook.training.launcher")

#: the train modes the form offers (a rewarded one takes a reward function: ``%qftrain --mode RFT --reward``)
LAUNCHER_MODES = tuple(m.name for m in MODE_TABLE.values() if not m.rewarded)
#: the launcher's validation split: ``TrainConfig.trainset_rate``'s default (the official SDK's 20)
DEFAULT_EVAL_SPLIT = int(TrainConfig.model_fields["trainset_rate"].default)


def platform_base_models(list_models: Any = None) -> tuple[str, ...]:
    """The base models to offer: the platform's chat and completion models (what ``%qfmodels``
    lists, so the cloud's names when qfnb points at the cloud), the usual fine-tune base first."""
    try:
        listing = (list_models or discovery.list_models)()
        names = listing.names("completion") + listing.names("chat")
    except Exception:  # the form still works: the user types a name
        names = []
    return tuple(sorted(dict.fromkeys(names), key=lambda n: n != DEFAULT_BASE)) or (DEFAULT_BASE,)  # the base first


def demo_dataset() -> Path | None:
    """The demo dataset's training split (``qfnb.dataset.demo_qa("train")``)."""
    from qfnb.dataset.demo import demo_qa  # deferred: loads pandas (`%load_ext qfnb` does not)

    try:
        return demo_qa("train")
    except OSError:  # a stripped install without the demo data
        return None


#: what each notebook cell's form last launched (``{cell id: {"command", "at"}}``), in the data dir
LAUNCHES_FILE = "launcher_cells.json"
#: the id of the notebook cell running now (JupyterLab sends it with each execution): :func:`register`
_cell_id: str | None = None


def register(ipython: Any) -> None:
    """Follow which notebook cell runs (so a form knows what its cell launched before a restart)."""

    def pre_run_cell(info: Any) -> None:
        global _cell_id
        _cell_id = getattr(info, "cell_id", None) or None

    ipython.events.register("pre_run_cell", pre_run_cell)


def _launches_path() -> Path:
    return default_data_dir() / LAUNCHES_FILE


def launched_from(cell_id: str | None) -> dict[str, Any] | None:
    """What the form in cell ``cell_id`` last launched (``command``, ``at``), or None."""
    if not cell_id:
        return None
    try:
        found = json.loads(_launches_path().read_text()).get(cell_id)
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) and found.get("command") else None


def remember_launch(cell_id: str | None, command: str) -> None:
    """Keep ``command`` as what cell ``cell_id``'s form launched (a later run of the cell says so)."""
    if not cell_id:
        return
    path = _launches_path()
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    known[cell_id] = {"command": command, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_json(path, known)


#: the files the form offers: every format ``Dataset.load(data_file=...)`` reads
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".txt")


def dataset_choices(root: Path | None = None) -> list[str]:
    """Data files (:data:`DATA_SUFFIXES`) under the notebook's folder (the kernel's working
    directory; two levels, hidden folders and notebook checkpoints skipped), then the bundled demo
    set. The form's default is the first of the folder's files, never the demo nor another
    session's data: with none, the field is empty and says what to give."""
    root = root or Path.cwd()
    found = sorted({str(p.relative_to(root)) for pat in ("*", "*/*") for p in root.glob(pat)
                    if p.suffix.lower() in DATA_SUFFIXES and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)})
    demo = demo_dataset()
    return found + ([str(demo)] if demo else [])


class FinetuneLauncher(VBox):
    """A form that validates a :class:`TrainSpec` and launches it with a live dashboard."""

    def __init__(self, factory: TrainerFactory | None = None, *, base_models: tuple[str, ...] | None = None,
                 mode: str = "SFT") -> None:
        self.factory = factory
        self.on_deploy: Any = None  # None: deploy on the platform (tests inject a double)
        self.dashboard: Any = None
        self.handle: DisplayHandle | None = None  # set by show(): the output the finished job's static state replaces
        self.var_name: str | None = None  # the -o variable holding this launcher
        self.cell_id = _cell_id  # the notebook cell showing this form
        #: what this cell's form launched before (a restarted kernel's Run All shows it, not a blank form)
        self.previous = launched_from(self.cell_id)
        style = {"description_width": "110px"}
        datasets = dataset_choices()
        if base_models is None:
            base_models = platform_base_models()
        self.base = w.Combobox(
            value=base_models[0], options=list(base_models), description="base model", ensure_option=False, style=style
        )
        self.name = w.Text(value="", description="name", placeholder="e.g. my-first-tune (optional)", style=style)
        # the train mode, and the data format it wants beside it
        self.mode = w.Dropdown(options=list(LAUNCHER_MODES), value=mode if mode in LAUNCHER_MODES else "SFT",
                               description="train mode", style=style)
        self.mode_format = SafeHTML(self._format_html())
        self.mode.observe(lambda _: setattr(self.mode_format, "value", self._format_html()), names="value")
        own = [d for d in datasets if not Path(d).is_absolute()]  # the notebook folder's, not the demo
        self.dataset = w.Combobox(
            value=own[0] if own else "",
            options=datasets,
            description="dataset",
            placeholder="a .jsonl, .json, .csv or .txt file, or a dataset id",
            ensure_option=False,
            style=style,
            layout=w.Layout(width="70%"),
        )
        lo, hi = BOUNDS["epochs"]
        self.epochs = w.BoundedIntText(value=1, min=int(lo), max=int(hi), description="epochs", style=style)
        lo, hi = BOUNDS["steps"]
        self.steps = w.BoundedIntText(value=30, min=0, max=int(hi), description="max steps", style=style,
                                      tooltip="stop after this many steps; 0 runs every step of the epochs")
        lo, hi = BOUNDS["batch_size"]
        self.batch_size = w.BoundedIntText(value=4, min=int(lo), max=int(hi), description="batch size", style=style)
        self.lr = w.FloatLogSlider(
            value=2e-4,
            base=10,
            min=-6,
            max=-2,
            step=0.1,
            readout_format=".1e",
            description="learning rate",
            style=style,
        )
        self.eval_split = w.BoundedIntText(
            value=DEFAULT_EVAL_SPLIT, min=0, max=MAX_EVAL_SPLIT, description="validation %", style=style,
            tooltip="held out of the data, never trained on: the dashboard draws its loss beside the training loss")
        lo, hi = BOUNDS["checkpoints"]
        self.checkpoints = w.BoundedIntText(
            value=DEFAULT_CHECKPOINTS if self.eval_split.value else 0, min=0, max=int(hi), description="checkpoints",
            style=style, tooltip="LoRA checkpoints kept evenly over the run, each scored on the held-out rows; "
            "deploy takes the best (0: the last step only)")
        self.length = SafeHTML(self._length_html())  # which of epochs and max steps decides the run's length
        for field in (self.epochs, self.steps):
            field.observe(lambda _: setattr(self.length, "value", self._length_html()), names="value")
        self.eval_split.observe(self._split_changed, names="value")
        self.deploy = w.Checkbox(value=False, description="deploy when done", indent=False)
        self.launch_button = w.Button(description="Launch", icon="play", button_style="primary")
        #: why nothing can launch from this form (a v2 API key alone on the cloud: no IAM keys), shown up front
        self.refusal = console_keys_problem(None)
        self.message = SafeHTML(self._previous_html() + (self._error_html(self.refusal) if self.refusal else ""))
        self.launch_button.disabled = self.refusal is not None
        self.slot = w.VBox()
        self.offline = SafeHTML(theme.offline_note("the kernel restarted: run the cell again to use this form"))
        self.launch_button.on_click(self._clicked_launch)
        self.form = w.VBox([
            self.name,
            w.HBox([self.mode, self.mode_format]),
            self.base,
            self.dataset,
            w.HBox([self.epochs, self.steps]),
            self.length,
            w.HBox([self.batch_size, self.lr]),
            w.HBox([self.eval_split, SafeHTML(f'<span style="color:{theme.TEXT_MUTED}">held out for the '
                                              "evaluation loss (never trained on); 0: none</span>")]),
            w.HBox([self.checkpoints, SafeHTML(f'<span style="color:{theme.TEXT_MUTED}">scored on the held-out '
                                               "rows; deploy takes the best</span>")]),
            w.HBox([self.deploy, self.launch_button]).add_class("qfnb-live-only"),
        ])
        # a cell that launched before (Run All after a restart): the record of that launch, and the
        # form only on asking for a new launch
        self.new_launch = w.Button(description="New launch", icon="plus", tooltip="show the form to launch again")
        self.new_launch.add_class("qfnb-live-only")
        self.new_launch.on_click(self._clicked_new_launch)
        self.form.layout.display = "none" if self.previous else None
        self.new_launch.layout.display = None if self.previous else "none"
        super().__init__(
            children=[
                SafeHTML("<b>Fine-tune</b>"),
                self.form,
                self.message,
                self.new_launch,
                self.slot,
                self.offline,
            ]
        )
        self.add_class("qfnb-launcher").add_class("qfnb-live")

    def _length_html(self) -> str:
        """Which of epochs and max steps decides how long the run is (max steps wins when set, as
        the platform's ``maxSteps`` wins over ``epoch``)."""
        if self.steps.value:
            text = (f"max steps wins: the run stops after {self.steps.value} steps, however many passes over the "
                    f"data that takes (epochs {self.epochs.value} is not used); 0 max steps: epochs decide")
        else:
            text = f"epochs decide: {self.epochs.value} pass(es) over the training rows"
        return f'<span class="qfnb-length" style="color:{theme.TEXT_MUTED}">{escape(text)}</span>'

    def _format_html(self) -> str:
        """The data format the chosen train mode wants."""
        return (f'<span class="qfnb-mode-format" style="color:{theme.TEXT_MUTED}">data: '
                f"<code>{escape(train_formats.FORMATS[self.mode.value])}</code></span>")

    def _split_changed(self, change: dict[str, Any]) -> None:
        """Checkpoints need held-out rows: none without a split, the default again with one."""
        if not change["new"]:
            self.checkpoints.value = 0
        elif not change["old"] and not self.checkpoints.value:
            self.checkpoints.value = DEFAULT_CHECKPOINTS

    def _previous_html(self) -> str:
        if not self.previous:
            return ""
        return (f'<div class="qfnb-launched" style="color:{theme.TEXT_MUTED}">launched from this cell at '
                f'{escape(self.previous.get("at", ""))}: <code style="color:{theme.TEXT};user-select:all">'
                f'{escape(self.previous["command"])}</code> · its job: <code>%qftrain --list</code></div>')

    def show(self) -> FinetuneLauncher:
        """Display the form with a display id. Call from a cell."""
        self.handle = display(self, display_id=True)
        return self

    def spec(self) -> TrainSpec:
        return TrainSpec(
            dataset=self.dataset.value.strip(),
            base=self.base.value.strip(),
            epochs=self.epochs.value,
            lr=self.lr.value,
            steps=self.steps.value or None,
            batch_size=self.batch_size.value,
            deploy=self.deploy.value,
            name=self.name.value.strip() or None,
            eval_split=self.eval_split.value,
            checkpoints=self.checkpoints.value,
            mode=self.mode.value,
        )

    def _clicked_new_launch(self, _: Any = None) -> None:
        self.form.layout.display = None
        self.new_launch.layout.display = "none"

    @staticmethod
    def _error_html(problem: object) -> str:
        return f'<span class="qfnb-launch-error" style="color:{theme.ERROR}">{escape(problem)}</span>'

    def _clicked_launch(self, _: Any = None) -> None:
        if problem := console_keys_problem(None):  # checked again: the keys may have changed since the form showed
            self.message.value = self._error_html(problem)
            return
        try:
            spec = self.spec()
            self.dashboard = launch(spec, self.factory, show=False, on_deploy=self.on_deploy)
        except Exception as exc:  # shown in the form; the kernel stays usable
            self.message.value = self._error_html(exc)
            return
        self.message.value = ""
        self.launch_button.disabled = True
        self.dashboard.launched_as = self.command()  # the record: what ran, with the values it ran with
        try:
            remember_launch(self.cell_id, self.dashboard.launched_as)
        except OSError as exc:  # the record of the cell is a nicety; the job runs regardless
            log.warning("could not remember what this cell launched: %s", exc)
        self.dashboard.handle = self.handle  # its final static state replaces the whole form
        self.dashboard.shown_in = self
        self.offline.value = theme.OFFLINE_CSS  # the dashboard says what a restart means for its job
        self.dashboard.var_name = f"{self.var_name}.dashboard" if self.var_name else None
        self.slot.children = (self.dashboard,)
        if self.handle is not None:  # the saved notebook keeps the launched line from now on, not the form
            self.handle.update(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The form, and as static HTML for viewers without widgets: the job's state once launched,
        else the ``%qftrain`` line the form would run."""
        data = dict(super()._repr_mimebundle_(**kwargs) or {})
        if self.dashboard is not None:
            data["text/html"] = self.dashboard.snapshot_html(chart=self.dashboard.chart.value or None)
        else:  # the record of an earlier launch, and the form unless it is hidden behind "New launch"
            form = ("" if self.previous and self.form.layout.display == "none" else "<b>Fine-tune</b> form (needs a "
                    f"running kernel); the same from code: <code>{escape(self.command())}</code>")
            data["text/html"] = clean(f'<div class="qfnb-launcher-static" style="color:{theme.TEXT}">'
                                      f"{self._previous_html()}{form}</div>")
        data["text/plain"] = repr(self)
        return data

    def command(self) -> str:
        """The ``%qftrain`` line equivalent to the form's current values."""
        base, data = (shlex.quote(v.strip() or d) for v, d in ((self.base.value, DEFAULT_BASE),
                                                                (self.dataset.value, "DATA.jsonl")))
        line = f"%qftrain --base {base} --dataset {data}"
        if self.name.value.strip():
            line += f" --name {shlex.quote(self.name.value.strip())}"
        if not MODE_TABLE[self.mode.value].default:
            line += f" --mode {self.mode.value}"
        line += f" --epochs {self.epochs.value} --batch-size {self.batch_size.value} --lr {self.lr.value:.1e}"
        line += f" --eval-split {self.eval_split.value} --checkpoints {self.checkpoints.value}"
        return line + (f" --steps {self.steps.value}" if self.steps.value else "") + (
            " --deploy" if self.deploy.value else "")

    def __repr__(self) -> str:
        if self.dashboard is not None:
            return repr(self.dashboard)
        if self.previous and self.form.layout.display == "none":
            return f"[qftrain launcher] launched from this cell at {self.previous.get('at', '?')}: " \
                   f"{self.previous['command']}"
        return f"[qftrain launcher] base={self.base.value} dataset={self.dataset.value or '?'}"


