"""``qfnb trainer``: run a fine-tune, post-pretrain or DPO job from the official job file or from
options (``--train-*`` flags, typed and ranged by :data:`qfnb.protocol.console.training.LIMITS`), detached
or in the foreground, and a saved trainer's info."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb.common.cli._shared import CliError, print_json
from qfnb.protocol.console.training import LIMITS

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.trainer import Event, EventHandler, LLMFinetune, TrainConfig

#: ``--train-peft-type``: PeftType's members in snake case (as officially), and their names
PEFT_TYPES = {"all": "ALL", "p_tuning": "PTuning", "lo_ra": "LoRA"}
#: the official CLI's ``--train-*`` hyperparameters, as keys of :data:`~qfnb.protocol.console.training.LIMITS`
#: (the one home of each one's type and range); the flag and the TrainConfig field are the key in snake case
TRAIN_FLAGS = ("epoch", "batchSize", "learningRate", "maxSeqLen", "loggingSteps", "warmupRatio", "weightDecay",
               "loraRank")


def _snake(key: str) -> str:
    """``batchSize`` -> ``batch_size``."""
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), key)


#: each trainer command's trainer class, train mode and help
TRAINERS = {"finetune": ("LLMFinetune", "SFT", "run a fine-tune trainer job"),
            "postpretrain": ("PostPreTrain", "PostPretrain", "run a post-pretrain (continued pre-training) job"),
            "dpo": ("DPO", "DPO", "run a DPO (preference training) job"),
            "run": ("LLMFinetune", "SFT", "run a fine-tune trainer job (deprecated, as officially: use finetune)")}


def add_parser(sub: Any) -> None:
    """``trainer finetune|postpretrain|dpo|run|info``."""
    trainer = sub.add_parser("trainer", help="run a fine-tune, post-pretrain or DPO job (from options or the "
                                             "official job file)")
    tsub = trainer.add_subparsers(dest="trainer_command", required=True)
    for command, (_, _, text) in TRAINERS.items():
        _trainer_job(tsub.add_parser(command, help=text, description=f"{text[0].upper()}{text[1:]}: -f job.json "
                                     "(the official pipeline file, as Finetune.save(file) writes it), or "
                                     "--train-type with --dataset-id."))
    info = tsub.add_parser("info", help="a saved trainer's info (by trainer id or task id)")
    info.add_argument("id", nargs="?", help="a trainer id, or a task id (task-...) of the trainer")
    info.add_argument("--trainer-id", help="the trainer id")
    info.add_argument("--task-id", help="a task id of the trainer")


def _trainer_job(ft: argparse.ArgumentParser) -> None:
    ft.add_argument("--dataset-id", help="the dataset (version) id")
    ft.add_argument("--dataset-bos-path", help="a dataset BOS path")
    ft.add_argument("--train-type", help="the base model to train")
    ft.add_argument("--previous-task-id", help="continue from this task's output")
    ft.add_argument("--trainer-pipeline-file", "-f", help="the trainer pipeline (job) file")
    ft.add_argument("--daemon", action="store_true", help="start the trainer and return (prints its id)")
    ft.add_argument("--train-config-file", help="a train config file (json/yaml)")
    ft.add_argument("--list-train-type", "-l", action="store_true",
                    help="print the models this job can train, and exit")
    ft.add_argument("--show-config-limit", "--show", "-s", metavar="TRAIN_TYPE",
                    help="print a model's hyperparameter limits, and exit")
    group = ft.add_argument_group("train config")
    for key in TRAIN_FLAGS:
        name, limit = _snake(key), LIMITS[key]
        group.add_argument(f"--train-{name.replace('_', '-')}", dest=f"train_{name}", type=limit.kind,
                           help=f"the train config's {name}, in {limit.describe()}")
    group.add_argument("--train-peft-type", choices=sorted(PEFT_TYPES), help="the peft type")
    group.add_argument("--trainset-rate", type=int, default=None, help="percent of the data used to train")
    group.add_argument("--train-lora-all-linear", help="LoRA on all linear layers (True/False)")
    deploy = ft.add_argument_group("deploy (after publishing)")
    deploy.add_argument("--deploy-name", help="deploy the model under this service name")
    deploy.add_argument("--deploy-endpoint-prefix", help="the service's endpoint prefix (with --deploy-name)")
    deploy.add_argument("--deploy-description", default="", help="the service's description")
    deploy.add_argument("--deploy-replicas", type=int, default=1, help="replicas")
    deploy.add_argument("--deploy-pool-type", choices=["public_resource", "private_resource"],
                        default="private_resource", help="pool type")
    deploy.add_argument("--deploy-service-type", choices=["chat", "completion", "embedding", "text2_image"],
                        default="chat", help="service type")


def _print_events() -> EventHandler:
    """An event handler writing the trainer's events as lines on stderr."""
    from qfnb.trainer import EventHandler  # deferred: loads pydantic (`qfnb --help` does not)

    class PrintEvents(EventHandler):
        def dispatch(self, event: Event) -> None:
            print(f"[{time.strftime('%H:%M:%S')}] {event.action_class} {event.action_state} "
                  f"{getattr(event, 'description', '') or ''}".rstrip(), file=sys.stderr)

    return PrintEvents()


def trainer(args: argparse.Namespace) -> int:
    import qfnb.trainer  # deferred: loads pydantic (`qfnb --help` does not)

    if args.trainer_command == "info":
        return _trainer_info(args)
    if args.list_train_type or args.show_config_limit:
        return _train_types(args)
    job_class = getattr(qfnb.trainer, TRAINERS[args.trainer_command][0])
    if args.trainer_pipeline_file is not None:
        if not Path(args.trainer_pipeline_file).is_file():
            raise CliError(f"--trainer-pipeline-file: no such file: {args.trainer_pipeline_file}")
        job = job_class.load(file=args.trainer_pipeline_file, event_handler=_print_events())
    else:
        job = _trainer_from_options(job_class, args)
    print(f"trainer id: {job.id} is created", file=sys.stderr)
    if args.daemon:
        return _run_detached(job, TRAINERS[args.trainer_command][0])
    job.run(progress=True)
    print_json(job.output)
    return 0


def _train_types(args: argparse.Namespace) -> int:
    """``--list-train-type``: the trainable models; ``--show-config-limit M``: M's limits (the platform's)."""
    # deferred: loads pydantic (`qfnb --help` does not)
    from qfnb.trainer.settings.model_info import get_trainer_model_list

    models = get_trainer_model_list(TRAINERS[args.trainer_command][1])
    if args.show_config_limit:
        info = models.get(args.show_config_limit)
        if info is None:
            raise CliError(f"--show-config-limit: {args.show_config_limit!r} is not trainable here "
                           f"(--list-train-type lists what is)")
        print_json(info.model_dump(mode="json"))
        return 0
    for name in sorted(models):
        print(name)
    return 0


def _run_detached(job: Any, class_name: str) -> int:
    """Save the trainer and run it in a process of its own session, which outlives this command."""
    import subprocess

    from qfnb.trainer.records import persist  # deferred: loads pydantic (`qfnb --help` does not)

    job.save()
    log = persist.pipeline_dir() / f"{job.id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    code = "import sys, qfnb.trainer as t; getattr(t, sys.argv[1]).load(sys.argv[2]).run(progress=False)"
    with log.open("ab") as out:
        child = subprocess.Popen([sys.executable, "-c", code, class_name, job.id], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"trainer[{job.id}] started with pid: {child.pid}\ncheck running log in: {log}")
    return 0


def _trainer_from_options(job_class: type[LLMFinetune], args: argparse.Namespace) -> LLMFinetune:
    from qfnb.dataset import Dataset  # deferred: loads pandas (`qfnb --help` does not)
    from qfnb.trainer import DeployConfig  # deferred: loads pydantic (`qfnb --help` does not)

    if not args.train_type and not args.previous_task_id:
        raise CliError("give -f <job file>, or --train-type (with --dataset-id or --dataset-bos-path)")
    if args.dataset_id is None and args.dataset_bos_path is None:
        raise CliError("--dataset-id or --dataset-bos-path is required without -f")
    config = _train_config(args)
    deploy = None
    if args.deploy_name is not None:
        if args.deploy_endpoint_prefix is None:
            raise CliError("--deploy-endpoint-prefix is required with --deploy-name")
        deploy = DeployConfig(name=args.deploy_name, endpoint_prefix=args.deploy_endpoint_prefix,
                              description=args.deploy_description, replicas=args.deploy_replicas)
    data = Dataset.load(qianfan_dataset_id=args.dataset_id) if args.dataset_id else None
    given = (("previous_task_id", args.previous_task_id), ("dataset_bos_path", args.dataset_bos_path),
             ("deploy_config", deploy))
    extra: dict[str, Any] = {k: v for k, v in given if v}
    return job_class(train_type=args.train_type or "", dataset=data, train_config=config,
                     event_handler=_print_events(), **extra)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The ``--train-config-file``'s config (or the defaults) with the ``--train-*`` options applied."""
    from qfnb.trainer import PeftType, TrainConfig  # deferred: loads pydantic (`qfnb --help` does not)

    config = TrainConfig.load(args.train_config_file) if args.train_config_file else TrainConfig()
    for name in (*map(_snake, TRAIN_FLAGS), "lora_all_linear"):
        value = getattr(args, f"train_{name}")
        if value is not None:
            setattr(config, name, value)
    if args.train_peft_type is not None:
        config.peft_type = getattr(PeftType, PEFT_TYPES[args.train_peft_type])
    if args.trainset_rate is not None:
        config.trainset_rate = args.trainset_rate
    return config


def _trainer_info(args: argparse.Namespace) -> int:
    from qfnb.trainer import LLMFinetune  # deferred: loads pydantic (`qfnb --help` does not)

    if args.id and (args.trainer_id or args.task_id):
        raise CliError("give the id once: positionally, or as --trainer-id / --task-id")
    if args.id:  # a task id as the platform prints it (task-...), else a trainer id
        args.task_id, args.trainer_id = (args.id, None) if args.id.startswith("task-") else (None, args.id)
    if not (args.trainer_id or args.task_id):
        raise CliError("give a trainer or task id (qfnb trainer info task-...), --trainer-id or --task-id")
    trainer_id = args.trainer_id
    if trainer_id is None:
        for summary in LLMFinetune.list():
            info = LLMFinetune.load(summary.id).info()
            if args.task_id in json.dumps(info):
                trainer_id = summary.id
                break
        else:
            raise CliError(f"no saved trainer ran task {args.task_id!r}")
    print_json(LLMFinetune.load(trainer_id).info())
    return 0
