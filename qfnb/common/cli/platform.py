"""``api``, ``dataset``, ``evaluation`` and ``cache``: the console-side commands (``trainer`` is
:mod:`.trainer_cmd`'s)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb.common.cli import trainer_cmd
from qfnb.common.cli._shared import CliError, json_object, print_json, split_list
from qfnb.protocol.limits import range_problem
from qfnb.protocol.platform.files import jsonl
from qfnb.protocol.wires.chat.ranges import RANGES

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.dataset import Dataset

QIANFAN_PATH_PREFIX = "qianfan://"
#: DataTemplateType's members in snake case, as the official command takes them
TEMPLATE_TYPES = ("non_sorted_conversation", "sorted_conversation", "prompt_chosen_rejected", "generic_text",
                  "query_set", "text2_image")


def add_parsers(sub: Any) -> None:
    _api(sub)
    _dataset(sub)
    trainer_cmd.add_parser(sub)
    _evaluation(sub)
    cache = sub.add_parser("cache", help="qfnb's response cache: stats, clear, or forget one model's answers")
    cache.add_argument("action", choices=["stats", "clear", "invalidate"], help="what to do")
    cache.add_argument("target", nargs="?", help="the model or endpoint whose answers invalidate forgets")


def _api(sub: Any) -> None:
    api = sub.add_parser("api", help="any console action, signed (raw.console), or a fine-tune task's detail")
    asub = api.add_subparsers(dest="api_command", required=True)
    detail = asub.add_parser("finetune.task.detail", help="a fine-tune task's detail (FineTune.V2.task_detail)")
    detail.add_argument("--task-id", required=True, help="the task id")
    raw = asub.add_parser("raw.console", help="call a console action (POST <route>?Action=<action>, signed)")
    raw.add_argument("--route", required=True, help="route, e.g. /v2/finetuning")
    raw.add_argument("--action", required=True, help="action, e.g. DescribeFineTuningTask")
    raw.add_argument("--data", required=True, help="the request body (a JSON object)")


def _dataset(sub: Any) -> None:
    ds = sub.add_parser("dataset", help="upload, download, view or predict a dataset")
    dsub = ds.add_subparsers(dest="dataset_command", required=True)
    download = dsub.add_parser("download", help="download a platform dataset to a local file")
    download.add_argument("dataset_id", help="the dataset (version) id, or qianfan://<id>")
    download.add_argument("--output", type=Path, default=None, help="the output file (default ./<timestamp>.jsonl)")
    upload = dsub.add_parser("upload", help="upload a local file as a platform dataset")
    upload.add_argument("path", type=Path, help="the dataset file")
    upload.add_argument("dst", nargs="?", help="an existing dataset id or qianfan://<id> (default: a new dataset)")
    _platform_dataset_options(upload)
    save = dsub.add_parser("save", help="save a dataset (a file or qianfan://<id>) to a file or the platform")
    save.add_argument("src", help="a file path or qianfan://<id>")
    save.add_argument("dst", nargs="?", help="a file, or qianfan://<id> to append to (default: a new platform "
                                             "dataset)")
    _platform_dataset_options(save)
    view = dsub.add_parser("view", help="print some rows of a dataset (a file or qianfan://<id>)")
    view.add_argument("dataset", help="a file path or qianfan://<id>")
    view.add_argument("--row", help="rows to show: 1,3-5,12 or all (default: the first 5)")
    view.add_argument("--column", help="columns to show, comma-separated")
    view.add_argument("--raw", action="store_true", help="print the rows as JSON lines")
    insight = dsub.add_parser("insight", help="print a dataset file's statistics (the data insight)")
    insight.add_argument("dataset_file", help="the dataset file")
    insight.add_argument("--columns", "-c", help="the text columns to measure, comma-separated (default: all)")
    predict = dsub.add_parser("predict", help="run a dataset's prompts through a model into a local file")
    predict.add_argument("dataset", help="a file path or qianfan://<id>")
    predict.add_argument("--model", default=None, help="the model used to predict (default: the platform's)")
    predict.add_argument("--endpoint", default=None, help="the endpoint used to predict; overrides --model")
    predict.add_argument("--output", type=Path, default=None, help="the output file (default ./<timestamp>.jsonl)")
    predict.add_argument("--input-columns", default="prompt", help="the input column(s), comma-separated")
    predict.add_argument("--reference-column", default=None, help="the reference column")
    predict.add_argument("--max-tokens", type=int, default=None,
                         help="the most tokens one answer may have (max_output_tokens; default: the platform's, "
                              "1024 on the local platform)")
    predict.add_argument("--temperature", type=float, default=None, help="the sampling temperature (0: greedy)")


def _platform_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset-name", help="the new dataset's name (default: the file's name)")
    parser.add_argument("--bos-path", help="a BOS path to stage the file in (bos://bucket/path/); the local "
                                           "platform needs none")
    parser.add_argument("--dataset-template-type", choices=TEMPLATE_TYPES, default="non_sorted_conversation",
                        help="the type of the dataset")
    parser.add_argument("--dataset-storage-type", choices=["private_bos", "public_bos"], default="private_bos",
                        help="the storage type of the dataset")


def _evaluation(sub: Any) -> None:
    ev = sub.add_parser("evaluation", help="evaluate models on the platform")
    esub = ev.add_subparsers(dest="evaluation_command", required=True)
    lm = esub.add_parser("list-evaluable-models", help="print the evaluable models")
    lm.add_argument("--preset", action=argparse.BooleanOptionalAction, default=None,
                    help="only (non-)preset models (not set: all)")
    lm.add_argument("--train-type", help="filter by train type, comma-separated")
    lm.add_argument("--name", help="filter by model name, comma-separated")
    run = esub.add_parser("run", help="run an evaluation task (at least one evaluator enabled)")
    run.add_argument("models", nargs="*", help="model version ids")
    run.add_argument("--dataset-id", help="the dataset id (required to run)")
    run.add_argument("--list-evaluable-models", action="store_true",
                     help="print the evaluable models and exit (the list-evaluable-models command has filters)")
    run.add_argument("--enable-rule-evaluator", action=argparse.BooleanOptionalAction, default=False,
                     help="enable the rule evaluator")
    run.add_argument("--using-similarity", action="store_true", help="rule evaluator: similarity")
    run.add_argument("--using-accuracy", action="store_true", help="rule evaluator: accuracy")
    run.add_argument("--stop-words", help="rule evaluator: stop words")
    run.add_argument("--enable-referee-evaluator", action=argparse.BooleanOptionalAction, default=False,
                     help="enable the referee evaluator")
    run.add_argument("--app-id", type=int, help="referee evaluator: the app id")
    run.add_argument("--prompt-metrics", default=None, help="referee evaluator: metrics")
    run.add_argument("--prompt-steps", default=None, help="referee evaluator: steps")
    run.add_argument("--prompt-max-score", type=int, default=5, help="referee evaluator: max score")
    run.add_argument("--enable-manual-evaluator", action=argparse.BooleanOptionalAction, default=False,
                     help="enable the manual evaluator")
    run.add_argument("--dimensions", help="manual evaluator: dimensions, comma-separated")


# ---- api ---------------------------------------------------------------------------------------

def api(args: argparse.Namespace) -> int:
    from qfnb._core.http.client import get_client  # deferred: loads the HTTP client (`qfnb --help` does not)
    from qfnb._core.runtime import sync  # deferred: `qfnb --help` does without it (2 modules)

    if args.api_command == "finetune.task.detail":
        from qfnb.resources import FineTune  # deferred: loads the HTTP client (`qfnb --help` does not)

        print_json(dict(FineTune.V2.task_detail(task_id=args.task_id).body))
        return 0
    body = json_object("--data", args.data)
    if not args.route.startswith("/"):
        raise CliError(f"--route must start with '/', got {args.route!r}")
    resp = sync.run(get_client().console_v2(args.route, args.action, body))
    print_json(dict(resp.body))
    return 0


# ---- dataset -----------------------------------------------------------------------------------

def dataset_id_of(path: str) -> str | None:
    """The platform dataset ``path`` names (``qianfan://<id>`` or ``ds-...``), or None: a file."""
    if path.startswith(QIANFAN_PATH_PREFIX):
        return path[len(QIANFAN_PATH_PREFIX):] or None
    return path if path.startswith("ds-") or path.isdigit() else None


def _load(path: str, **kwargs: Any) -> Dataset:
    from qfnb.dataset import Dataset  # deferred: loads pandas (`qfnb --help` does not)

    dataset_id = dataset_id_of(path)
    if dataset_id is not None:
        return Dataset.load(qianfan_dataset_id=dataset_id, **kwargs)
    if not Path(path).exists():
        raise CliError(f"no such file: {path} (a platform dataset is qianfan://<id>)")
    return Dataset.load(data_file=path, **kwargs)


def _download(path: str, output: Path) -> None:
    """The platform's export of the dataset, entity by entity as the export holds them (a conversation
    is a list of turns), one JSON line each: the file the official ``dataset download`` writes."""
    import asyncio

    from qfnb.dataset.remote._platform import download_items  # deferred: loads pandas (`qfnb --help` does not)

    items = asyncio.run(download_items(str(dataset_id_of(path)), None))
    output.write_text(jsonl(items), "utf-8")


def _default_output() -> Path:
    return Path(f"./{time.strftime('%Y%m%d_%H%M%S')}.jsonl")


def parse_rows(spec: str | None, count: int) -> list[int]:
    """``--row``: ``1,3-5,12`` (0-based, as the official command), ``all``, or the first 5."""
    if spec is None:
        return list(range(min(5, count)))
    if spec.strip() == "all":
        return list(range(count))
    rows: list[int] = []
    for part in split_list(spec):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise CliError(f"--row takes numbers and ranges like 1,3-5 or 'all', got {part!r}") from None
        if first > last or first < 0:
            raise CliError(f"--row: {part!r} is not a range of row numbers")
        rows += range(first, last + 1)
    bad = [r for r in rows if r >= count]
    if bad:
        raise CliError(f"--row: the dataset has {count} rows (0-{count - 1}), asked for {bad[0]}")
    return rows


def dataset(args: argparse.Namespace) -> int:
    cmd = args.dataset_command
    if cmd == "download":
        if dataset_id_of(args.dataset_id) is None:
            raise CliError(f"not a dataset id: {args.dataset_id!r} (give an id or qianfan://<id>)")
        output = args.output or _default_output()
        _download(args.dataset_id, output)
        print(f"Dataset has been saved to: {output.absolute()}")
        return 0
    if cmd == "upload":
        return _upload(args)
    if cmd == "save":
        return _save(args)
    if cmd == "view":
        return _view(args)
    if cmd == "insight":  # officially a Streamlit app; here the same statistics as text
        if not Path(args.dataset_file).exists():
            raise CliError(f"no such file: {args.dataset_file}")
        print(repr(_load(args.dataset_file).show_in_data_insight_mode(split_list(args.columns) or None)))
        return 0
    params = _predict_params(args)
    output = args.output or _default_output()
    columns = split_list(args.input_columns)
    if not columns:
        raise CliError("--input-columns names no column")
    ds = _load(args.dataset)
    ds.set_columns(columns, args.reference_column)
    from qfnb.resources.defaults import default_model  # deferred: `qfnb --help` does without it (3 modules)

    # no --model nor --endpoint: the model a chat without one answers with, as the official default does
    model = args.model or (None if args.endpoint else default_model("chat"))
    result = ds.test_using_llm(model=model, endpoint=args.endpoint, prompt_column=columns[0], progress=True,
                               **params)
    result.save(data_file=str(output.absolute()))
    print(f"Prediction result has been saved to: {output.absolute()}")
    return 0


def _predict_params(args: argparse.Namespace) -> dict[str, Any]:
    """``--max-tokens`` / ``--temperature`` as body fields, checked against the platform's ranges
    before the dataset is read."""
    params = {k: v for k, v in (("max_output_tokens", args.max_tokens), ("temperature", args.temperature))
              if v is not None}
    for name, value in params.items():
        problem = range_problem(value, *RANGES[name])
        if problem:
            flag = "--max-tokens" if name == "max_output_tokens" else "--temperature"
            raise CliError(f"{flag} {problem}")
    return params


def _upload(args: argparse.Namespace) -> int:
    if not args.path.exists():
        raise CliError(f"no such file: {args.path}")
    if args.dst is not None and dataset_id_of(args.dst) is None:
        raise CliError(f"not a dataset id: {args.dst!r} (give an id or qianfan://<id>)")
    return _to_platform(_load(str(args.path)), args)


def _to_platform(ds: Any, args: argparse.Namespace) -> int:
    """Append ``ds`` to ``args.dst`` (a platform dataset), or create one from the options."""
    from qfnb.resources.console.consts import DataTemplateType  # deferred: `qfnb --help` does without it (36 modules)

    target = dataset_id_of(args.dst) if args.dst is not None else None
    if target is not None:
        ds.save(qianfan_dataset_id=target)
    else:
        template = getattr(DataTemplateType, "".join(w.title() for w in args.dataset_template_type.split("_")))
        ds.save(qianfan_dataset_create_args={"name": args.dataset_name or args.path.stem,
                                             "template_type": template})
    print(f"Dataset has been uploaded: qianfan://{ds.qianfan_dataset_id}")
    return 0


def _save(args: argparse.Namespace) -> int:
    """``dataset save SRC [DST]``: to a file, appended to a platform dataset, or a new one."""
    ds = _load(args.src)
    if args.dst is not None and dataset_id_of(args.dst) is None:
        ds.save(data_file=args.dst)
        print(f"Dataset has been saved to: {Path(args.dst).absolute()}")
        return 0
    args.path, args.dataset_name = Path(args.src), args.dataset_name or Path(args.src).stem
    return _to_platform(ds, args)


def _view(args: argparse.Namespace) -> int:
    frame = _load(args.dataset).to_pandas()
    rows = parse_rows(args.row, len(frame))
    columns = split_list(args.column) or list(frame.columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CliError(f"--column: no column {missing[0]!r} (the columns: {', '.join(map(str, frame.columns))})")
    shown = frame.iloc[rows][columns]
    if args.raw:
        for record in shown.to_dict(orient="records"):
            print(json.dumps(record, ensure_ascii=False, default=str))
    else:
        print(shown.to_string())
    return 0


# ---- evaluation ----------------------------------------------------------------------------------

def evaluation(args: argparse.Namespace) -> int:
    if args.evaluation_command == "list-evaluable-models":
        return _list_evaluable(args)
    if args.list_evaluable_models:
        return _list_evaluable(argparse.Namespace(preset=None, train_type=None, name=None))
    if not args.models or not args.dataset_id:
        raise CliError("evaluation run needs model version ids and --dataset-id")
    from qfnb.dataset import Dataset  # deferred: loads pandas (`qfnb --help` does not)
    from qfnb.evaluation import EvaluationManager  # deferred: loads pandas (`qfnb --help` does not)
    from qfnb.model import Model  # deferred: loads pydantic (`qfnb --help` does not)

    evaluators = _evaluators(args)
    manager = EvaluationManager(qianfan_evaluators=evaluators)
    result = manager.eval([Model(version_id=m) for m in args.models], Dataset.load(qianfan_dataset_id=args.dataset_id))
    if result is None or not result.metrics:
        print(f"The data has been processed; evaluation task {manager.task_id} waits for manual scoring.")
        return 0
    print_json(result.metrics)
    return 0


def _evaluators(args: argparse.Namespace) -> list[Any]:
    """The platform evaluators the options enable (at least one; the manual one alone)."""
    from qfnb.evaluation import (  # deferred: loads pandas (`qfnb --help` does not)
        ManualEvaluatorDimension,
        QianfanManualEvaluator,
        QianfanRefereeEvaluator,
        QianfanRuleEvaluator,
    )
    evaluators: list[Any] = []
    if args.enable_rule_evaluator:
        evaluators.append(QianfanRuleEvaluator(using_similarity=args.using_similarity,
                                               using_accuracy=args.using_accuracy, stop_words=args.stop_words))
    if args.enable_referee_evaluator:
        if args.app_id is None:
            raise CliError("--app-id is required for the referee evaluator")
        referee = {k: v for k, v in (("prompt_metrics", args.prompt_metrics), ("prompt_steps", args.prompt_steps))
                   if v is not None}
        evaluators.append(QianfanRefereeEvaluator(app_id=args.app_id, prompt_max_score=args.prompt_max_score,
                                                  **referee))
    if args.enable_manual_evaluator:
        if not args.dimensions:
            raise CliError("--dimensions is required for the manual evaluator")
        if evaluators:
            raise CliError("the manual evaluator may not be mixed with other evaluators")
        evaluators.append(QianfanManualEvaluator(
            evaluation_dimensions=[ManualEvaluatorDimension(dimension=d) for d in split_list(args.dimensions)]))
    if not evaluators:
        raise CliError("enable at least one evaluator (--enable-rule-evaluator, --enable-referee-evaluator or "
                       "--enable-manual-evaluator)")
    return evaluators


def _list_evaluable(args: argparse.Namespace) -> int:
    from qfnb.resources import Model  # deferred: loads the HTTP client (`qfnb --help` does not)

    types, names = set(split_list(args.train_type)), split_list(args.name)
    for model in Model.evaluable_model_list().parsed.result:
        preset = model.source == "PlatformPreset"
        if args.preset is not None and preset != args.preset:
            continue
        if types and model.train_type not in types:
            continue
        if names and not any(n in model.model_name for n in names):
            continue
        versions = ", ".join(f"{v.version} ({v.model_version_id_str})" for v in model.model_version_list)
        print(f"{model.model_name}  preset={'yes' if preset else 'no'}  train_type={model.train_type}"
              f"  versions: {versions}")
    return 0


# ---- cache ---------------------------------------------------------------------------------------

def cache(args: argparse.Namespace) -> int:
    from qfnb._core.record.cache import default_cache  # deferred: `qfnb --help` does without it (3 modules)

    store = default_cache()
    if args.action == "stats":
        stats = store.stats()
        print(f"entries      {stats.entries}\nsize         {stats.bytes / 2**20:.1f} MiB of "
              f"{stats.max_bytes / 2**20:.0f} MiB\nhits         {stats.hits}\nsaved tokens {stats.saved_tokens}\n"
              f"file         {stats.path}")
    elif args.action == "clear":
        print(f"cleared {store.clear()} cached answers")
    else:
        if not args.target:
            raise CliError("cache invalidate needs the model or endpoint whose answers to forget")
        print(f"forgot {store.invalidate(args.target)} cached answers of {args.target}")
    return 0


COMMANDS = {"api": api, "dataset": dataset, "trainer": trainer_cmd.trainer, "evaluation": evaluation, "cache": cache}
