"""URL paths of the Qianfan platform, and the built-in model name → endpoint catalog.

The catalog is data (``models.json``), not code: the platform's dynamic list from
``service/list`` is merged over it at run time by the client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from qfnb.protocol.version import __version__
from qfnb.protocol.wires.qianfan import batch as batch_wire

DEFAULT_BASE_URL = "https://aip.baidubce.com"
DEFAULT_CONSOLE_BASE_URL = "https://qianfan.baidubce.com"
DEFAULT_IAM_BASE_URL = "https://iam.bj.baidubce.com"

MODEL_API_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop"
OAUTH_TOKEN = "/oauth/2.0/token"
CHAT_V2 = "/v2/chat/completions"
BEARER_TOKEN = "/v1/BCE-BEARER/token"
#: the request header naming one logical model call, the same on each of its retries (the name
#: Stripe's and OpenAI's APIs use): the local platform runs a keyed call once per caller
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: the longest ``Idempotency-Key`` the local platform keeps
MAX_IDEMPOTENCY_KEY_CHARS = 255
#: the answer header of a retry the local platform served from its first attempt: ``attached``
#: (that attempt was still working) or ``stored`` (it had finished)
REUSED_HEADER = "X-Qfnb-Idempotent-Replay"
#: the local platform's keyed calls: ``DELETE {CALLS_ROUTE}/{key}`` cancels the call its caller sent
#: under that key (the client sends it when the caller stops the call: an Interrupt, a cancelled
#: task, a stream closed early); ``GET {CALLS_ROUTE}/{key}`` says what it is doing
#: (:mod:`qfnb.protocol.wires.local.call_progress`); the cloud has no such route
CALLS_ROUTE = "/qfnb/calls"


def idempotency_key_problem(key: object) -> str | None:
    """Why ``key`` cannot be sent as an ``Idempotency-Key`` (None: it can): it must be a string of 1 to
    :data:`MAX_IDEMPOTENCY_KEY_CHARS` printable ASCII characters (an HTTP header's value)."""
    if not isinstance(key, str):
        return f"must be a string, got {type(key).__name__}"
    if not key:
        return "must not be empty"
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        return f"must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters, got {len(key)}"
    bad = next((c for c in key if not (c.isascii() and c.isprintable())), None)
    if bad is not None:
        return f"must be printable ASCII characters, got {bad!r} at position {key.index(bad)}"
    return None


API_TYPES: tuple[str, ...] = ("chat", "completions", "embeddings", "text2image", "image2text", "reranker", "plugin")

# v1 plugin routes: EB plugins have fixed paths, custom Qianfan plugins use "/plugin/{ep}/".
EB_PLUGINS = "/erniebot/plugins"
EB_PLUGIN_V2 = "/erniebot/plugin"


@dataclass(frozen=True)
class Target:
    """Where an inference call goes: ``api_type``, its ``endpoint`` (the suffix below
    ``/{api_type}/``, or with ``verbatim`` the whole path below the model API prefix, as a custom
    endpoint with ``QIANFAN_USE_CUSTOM_ENDPOINT`` is), and the model name when it was asked by name."""

    api_type: str
    endpoint: str
    model: str | None = None
    verbatim: bool = False

    @property
    def path(self) -> str:
        """The one place the path below the model API prefix is made: ``/chat/ernie-lite-8k``,
        ``/plugin/{app}/``, an ERNIE Bot plugin's fixed path, or the verbatim endpoint."""
        endpoint = self.endpoint.strip("/")
        if self.verbatim:
            return "/" + endpoint
        if self.api_type == "plugin":
            fixed = "/" + endpoint
            return fixed if fixed in (EB_PLUGINS, EB_PLUGIN_V2) else f"/plugin/{endpoint}/"
        return f"/{self.api_type}/{endpoint.removeprefix(self.api_type + '/')}"


class Console:
    """Console API paths (v1 ``/wenxinworkshop/...`` and v2 ``/v2/<domain>?Action=``)."""

    FT_CREATE_TASK = "/wenxinworkshop/finetune/createTask"
    FT_CREATE_JOB = "/wenxinworkshop/finetune/createJob"
    FT_JOB_DETAIL = "/wenxinworkshop/finetune/jobDetail"
    FT_STOP_JOB = "/wenxinworkshop/finetune/stopJob"

    MODEL_DETAIL = "/wenxinworkshop/modelrepo/modelDetail"
    MODEL_VERSION_DETAIL = "/wenxinworkshop/modelrepo/modelVersionDetail"
    MODEL_PUBLISH = "/wenxinworkshop/modelrepo/publishTrainModel"
    EVAL_CREATE = "/wenxinworkshop/modelrepo/eval/create"
    EVAL_DETAIL = "/wenxinworkshop/modelrepo/eval/detail"
    EVAL_REPORT = "/wenxinworkshop/modelrepo/eval/report"
    EVAL_CANCEL = "/wenxinworkshop/modelrepo/eval/cancel"
    EVAL_RESULT_EXPORT = "/wenxinworkshop/modelrepo/eval/result/export"
    EVAL_RESULT_EXPORT_INFO = "/wenxinworkshop/modelrepo/eval/result/export/info"
    EVAL_RESULT_LIST = "/wenxinworkshop/modelrepo/eval/result/list"
    EVAL_DELETE = "/wenxinworkshop/modelrepo/eval/delete"
    EVAL_MODEL_LIST = "/wenxinworkshop/modelrepo/eval/model/list"
    MODEL_PRESET_LIST = "/wenxinworkshop/modelrepo/model/preset/list"
    MODEL_USER_LIST = "/wenxinworkshop/modelrepo/model/user/list"
    MODEL_BATCH_DELETE = "/wenxinworkshop/modelrepo/model/batchDelete"
    MODEL_VERSION_BATCH_DELETE = "/wenxinworkshop/modelrepo/model/version/batchDelete"

    SERVICE_APPLY = "/wenxinworkshop/service/apply"
    SERVICE_DETAIL = "/wenxinworkshop/service/detail"
    SERVICE_LIST = "/wenxinworkshop/service/list"

    DATASET_CREATE = "/wenxinworkshop/dataset/create"
    DATASET_IMPORT = "/wenxinworkshop/dataset/import"
    DATASET_RELEASE = "/wenxinworkshop/dataset/release"
    DATASET_INFO = "/wenxinworkshop/dataset/info"
    DATASET_EXPORT = "/wenxinworkshop/dataset/export"
    DATASET_EXPORT_RECORD = "/wenxinworkshop/dataset/exportRecord"
    DATASET_DELETE = "/wenxinworkshop/dataset/delete"
    ETL_CREATE = "/wenxinworkshop/etl/create"
    ETL_DETAIL = "/wenxinworkshop/etl/detail"
    ETL_LIST = "/wenxinworkshop/etl/list"
    ETL_DELETE = "/wenxinworkshop/etl/delete"
    AUG_CREATE = "/wenxinworkshop/enhance/create"
    AUG_LIST = "/wenxinworkshop/enhance/list"
    AUG_DETAIL = "/wenxinworkshop/enhance/detail"
    AUG_DELETE = "/wenxinworkshop/enhance/delete"
    ENTITY_ANNOTATE = "/wenxinworkshop/entity/annotate"
    ENTITY_DELETE = "/wenxinworkshop/entity/delete"
    ENTITY_LIST = "/wenxinworkshop/entity/list"
    PROMPT_CREATE = "/wenxinworkshop/prompt/template/create"
    PROMPT_INFO = "/wenxinworkshop/prompt/template/info"
    PROMPT_UPDATE = "/wenxinworkshop/prompt/template/update"
    PROMPT_DELETE = "/wenxinworkshop/prompt/template/delete"
    PROMPT_LIST = "/wenxinworkshop/prompt/template/list"
    PROMPT_LABEL_LIST = "/wenxinworkshop/prompt/label/list"
    V2_PROMPT_TEMPLATES = "/v2/promptTemplates"
    V2_PROMPT_LABELS = "/v2/promptLabels"

    V2_FINETUNING = "/v2/finetuning"
    V2_MODEL = "/v2/model"
    V2_SERVICE = "/v2/service"
    V2_DATASET = "/v2/dataset"


class V2Action:
    """``Action=`` values of the v2 console API used by the SDK."""

    CREATE_JOB = "CreateFineTuningJob"
    CREATE_TASK = "CreateFineTuningTask"
    DESCRIBE_JOBS = "DescribeFineTuningJobs"
    DESCRIBE_TASKS = "DescribeFineTuningTasks"
    DESCRIBE_TASK = "DescribeFineTuningTask"
    STOP_TASK = "StopFineTuningTask"
    DELETE_TASK = "DeleteFineTuningTask"
    SUPPORTED_MODELS = "DescribeFineTuningSupportModels"
    DESCRIBE_MODEL_SET = "DescribeModelSet"
    DESCRIBE_MODEL = "DescribeModel"
    CREATE_CUSTOM_MODEL_SET = "CreateCustomModelSet"
    CREATE_CUSTOM_MODEL = "CreateCustomModel"
    CREATE_SERVICE = "CreateService"
    DESCRIBE_SERVICE = "DescribeService"
    DESCRIBE_SERVICES = "DescribeServices"


#: OpenAI's fine-tuning jobs route (``POST`` creates one), under /v1 and /v2 alike
OPENAI_FINE_TUNING_JOBS = ("/v1/fine_tuning/jobs", "/v2/fine_tuning/jobs")
#: the dataset imports: each runs once per ``Idempotency-Key`` on its own (its key kept with the rows it
#: appended, :func:`qfnb.local.domain.console.dataset_tasks.import_dataset`)
KEYED_IMPORTS: frozenset[tuple[str, str | None]] = frozenset({
    (Console.DATASET_IMPORT, None), (Console.V2_DATASET, "CreateImportTask")})
#: the calls that create something or start paid work (a fine-tune, a deployment, a batch, an evaluation):
#: ``(path, Action)``, None for a path without one. The local platform runs each once per caller and
#: ``Idempotency-Key`` (:mod:`qfnb.local.domain.records.keyed_creates`); the cloud-only ones (custom model sets,
#: the v2 prompt library) carry the key too, for the platform that honours it
KEYED_CREATES: frozenset[tuple[str, str | None]] = frozenset({
    (Console.FT_CREATE_TASK, None), (Console.FT_CREATE_JOB, None),
    (Console.V2_FINETUNING, V2Action.CREATE_JOB), (Console.V2_FINETUNING, V2Action.CREATE_TASK),
    (Console.MODEL_PUBLISH, None), (Console.V2_MODEL, V2Action.CREATE_CUSTOM_MODEL_SET),
    (Console.V2_MODEL, V2Action.CREATE_CUSTOM_MODEL),
    (Console.SERVICE_APPLY, None), (Console.V2_SERVICE, V2Action.CREATE_SERVICE),
    (Console.EVAL_CREATE, None),
    (Console.DATASET_CREATE, None), (Console.V2_DATASET, "CreateDataset"),
    (Console.PROMPT_CREATE, None), (Console.V2_PROMPT_TEMPLATES, "CreatePromptTemplate"),
    (batch_wire.ROUTE, batch_wire.CREATE),
    # OpenAI's wire (bearer auth), under /v1 and /v2 alike: a fine-tuning job, a batch
    *((path, None) for path in (*OPENAI_FINE_TUNING_JOBS, batch_wire.BATCHES, batch_wire.V2_BATCHES)),
})


def keyed_create(path: str, action: str | None = None) -> bool:
    """True for a call of :data:`KEYED_CREATES` (a ``POST``): the local platform makes what it creates once
    per caller and ``Idempotency-Key``."""
    return (path, action or None) in KEYED_CREATES


def runs_once_per_key(path: str, action: str | None = None, method: str = "POST") -> bool:
    """True for the calls qfnb's client sends under an ``Idempotency-Key`` of their own (one a call, the same
    on its retries and when it sends the call again after the daemon died under it): every create of
    :data:`KEYED_CREATES` and the dataset imports (:data:`KEYED_IMPORTS`), so a call sent again creates,
    trains, deploys or imports once."""
    return method.upper() == "POST" and (keyed_create(path, action) or (path, action or None) in KEYED_IMPORTS)


def changes_service_list(path: str, action: str | None = None) -> bool:
    """True for console calls after which ``service/list`` answers differently (deploy, publish, delete)."""
    if path in (Console.SERVICE_APPLY, Console.MODEL_PUBLISH):
        return True
    if path in (Console.V2_SERVICE, Console.V2_MODEL) and action:
        return action.startswith(("Create", "Delete", "Publish"))
    return "/service/" in path.lower() and "delete" in path.lower()


@lru_cache(maxsize=1)
def model_catalog() -> dict[str, Any]:
    """The built-in catalog: ``{api_type: {"default": name, "models": {name: {...}}}}``."""
    text = resources.files(__package__).joinpath("models.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def builtin_model(api_type: str, model: str | None) -> dict[str, Any]:
    """A built-in model's catalog entry (its name in any case), or {}."""
    wanted = (model or "").lower()
    return next((info for name, info in model_catalog().get(api_type, {}).get("models", {}).items()
                 if name.lower() == wanted and isinstance(info, dict)), {})


def builtin_endpoint(api_type: str, model: str) -> str | None:
    """Endpoint suffix for a built-in model name (case-insensitive), or None."""
    info = builtin_model(api_type, model)
    return str(info["endpoint"]) if info else None


def default_model(api_type: str) -> str | None:
    """The platform's default model name for ``api_type``."""
    value = model_catalog().get(api_type, {}).get("default")
    return str(value) if value else None


class Consts:
    """The official SDK's names of the API paths, console actions and header names (its
    ``qianfan.consts.Consts``)."""

    ModelAPIPrefix = MODEL_API_PREFIX
    AuthAPI = OAUTH_TOKEN
    IAMBearerTokenAPI = BEARER_TOKEN
    ChatV2API = CHAT_V2
    ConsoleAPIQueryAction = "Action"
    FineTuneCreateTaskAPI = Console.FT_CREATE_TASK
    FineTuneCreateJobAPI = Console.FT_CREATE_JOB
    FineTuneGetJobAPI = Console.FT_JOB_DETAIL
    FineTuneStopJobAPI = Console.FT_STOP_JOB
    FineTuneCreateJobAction = V2Action.CREATE_JOB
    FineTuneCreateTaskAction = V2Action.CREATE_TASK
    FineTuneJobListAction = V2Action.DESCRIBE_JOBS
    FineTuneTaskListAction = V2Action.DESCRIBE_TASKS
    FineTuneTaskDetailAction = V2Action.DESCRIBE_TASK
    FineTuneStopTaskAction = V2Action.STOP_TASK
    FineTuneSupportedModelsAction = V2Action.SUPPORTED_MODELS
    ModelDescribeModelSetAction = V2Action.DESCRIBE_MODEL_SET
    ModelDescribeModelAction = V2Action.DESCRIBE_MODEL
    ServiceCreateAction = V2Action.CREATE_SERVICE
    ServiceDetailAction = V2Action.DESCRIBE_SERVICE
    ServiceListAction = V2Action.DESCRIBE_SERVICES
    ModelDetailAPI = Console.MODEL_DETAIL
    ModelVersionDetailAPI = Console.MODEL_VERSION_DETAIL
    ModelPublishAPI = Console.MODEL_PUBLISH
    ModelEvalCreateAPI = Console.EVAL_CREATE
    ModelEvalInfoAPI = Console.EVAL_DETAIL
    ModelEvalResultAPI = Console.EVAL_REPORT
    ModelEvalStopAPI = Console.EVAL_CANCEL
    ServiceCreateAPI = Console.SERVICE_APPLY
    ServiceDetailAPI = Console.SERVICE_DETAIL
    ServiceListAPI = Console.SERVICE_LIST
    DatasetCreateAPI = Console.DATASET_CREATE
    DatasetReleaseAPI = Console.DATASET_RELEASE
    DatasetImportAPI = Console.DATASET_IMPORT
    DatasetInfoAPI = Console.DATASET_INFO
    DatasetExportAPI = Console.DATASET_EXPORT
    DatasetDeleteAPI = Console.DATASET_DELETE
    DatasetExportRecordAPI = Console.DATASET_EXPORT_RECORD
    FineTuneV2BaseRouteAPI = Console.V2_FINETUNING
    ModelV2BaseRouteAPI = Console.V2_MODEL
    ServiceV2BaseRouteAPI = Console.V2_SERVICE
    DatasetV2BaseRouteAPI = Console.V2_DATASET
    XRequestID = "Request_id"
    XResponseID = "X-Baidu-Request-Id"
    QianfanRequestIdDefaultPrefix = f"sdk-py-{__version__}"
