"""The answers, declared once: the lenient models ``resp.parsed`` reads a platform answer into.

``python tools/generate.py`` writes ``qfnb/protocol/wires/qianfan/answers.py`` from this file. Every field
has a default (the platform omits fields by model and version) and every model keeps the fields
it does not declare (:class:`qfnb.protocol.wires.qianfan.answer.AnswerModel`). An inference call names its answer
and chunk models in :mod:`spec.inference` (``Call.answer``/``Call.chunk``); a console builder
names its answer in ``@surface("Class.method", answer="...")``.

The fields are the platform's documented answer fields (the Qianfan API reference), which the
local platform answers too. ``wire`` is the answer's key where it is not the Python name.
"""

from __future__ import annotations

from spec.schema import AnswerModel, Field


def f(name: str, type: str, default: str, doc: str = "", wire: str | None = None) -> Field:
    return Field(name, type, default, doc=doc, wire=wire)


def s(name: str, wire: str | None = None, doc: str = "") -> Field:
    """A string field, ``""`` when absent."""
    return f(name, "str", '""', doc, wire)


def opt(name: str, type: str, wire: str | None = None, doc: str = "") -> Field:
    """A field that is ``None`` when absent."""
    return f(name, f"{type} | None", "None", doc, wire)


# ---------------------------------------------------------------------------- inference parts
USAGE = AnswerModel("TokenUsage", "Tokens counted for one call.", (
    f("prompt_tokens", "int", "0"), f("completion_tokens", "int", "0"), f("total_tokens", "int", "0")))
FUNCTION_CALL = AnswerModel("FunctionCall", "A v1 answer's call of one of the ``functions`` offered.", (
    s("name"), s("arguments", doc="the arguments, as JSON text."), opt("thoughts", "str")))
TOOL_FUNCTION = AnswerModel("ToolFunction", "The function a v2 tool call names.", (s("name"), s("arguments")))
TOOL_CALL = AnswerModel("ToolCall", "One v2 tool call.", (
    s("id"), f("type", "str", '"function"'), f("function", "ToolFunction", "ToolFunction()")))
CHOICE_MESSAGE = AnswerModel("ChoiceMessage", "A v2 choice's ``message`` (or a chunk's ``delta``).", (
    s("role"), opt("content", "str", doc="the text (``None`` in a tool call)."), opt("reasoning_content", "str"),
    f("tool_calls", "list[ToolCall]", "[]"), opt("name", "str"), opt("tool_call_id", "str")))
CHOICE = AnswerModel("Choice", "One of a v2 answer's ``choices`` (``message``; a stream chunk's: ``delta``).", (
    f("index", "int", "0"), opt("finish_reason", "str"), opt("logprobs", "dict[str, Any]"), opt("flag", "int"),
    opt("ban_round", "int"), f("message", "ChoiceMessage", "ChoiceMessage()"),
    f("delta", "ChoiceMessage", "ChoiceMessage()")))
STATISTIC = AnswerModel("Statistic", "The call's latencies, in seconds, measured here (``start_timestamp``: ms).", (
    f("first_token_latency", "float", "0.0"), f("request_latency", "float", "0.0"), f("total_latency", "float", "0.0"),
    f("start_timestamp", "float", "0.0"), f("avg_output_tokens_per_second", "float", "0.0")))
SEARCH_RESULT = AnswerModel("SearchResult", "One web page a search-backed answer cites.", (
    f("index", "int", "0"), s("url"), s("title"), s("datasource_id")))
EMBEDDING_ITEM = AnswerModel("EmbeddingItem", "One text's vector.", (
    f("object", "str", '"embedding"'), f("embedding", "list[float]", "[]"),
    f("index", "int", "0", doc="the text's place in the call's ``texts``.")))
IMAGE_ITEM = AnswerModel("ImageItem", "One drawn image.", (
    f("object", "str", '"image"'), s("b64_image", doc="the image, base64."), f("index", "int", "0"),
    opt("image", "bytes", doc='the decoded image (``with_decode="base64"``).')))
RERANK_ITEM = AnswerModel("RerankItem", "One document and its relevance.", (
    s("document"), f("relevance_score", "float", "0.0"), f("index", "int", "0", doc="its place in ``documents``.")))

#: what every inference answer carries
_HEAD = (s("id"), s("object"), f("created", "int", "0"), f("usage", "TokenUsage", "TokenUsage()"))
#: a v1 text answer (chat, completion, plugin, image2text): the text and whether it is whole
_V1_TEXT = (s("result", doc="the text answer (v1)."), f("is_truncated", "bool", "False"),
            f("need_clear_history", "bool", "False"), opt("finish_reason", "str"), opt("ban_round", "int"),
            opt("flag", "int"))
#: what a v1 stream chunk adds
_V1_CHUNK = (f("sentence_id", "int", "0"), f("is_end", "bool", "False"))
_CHAT = (*_HEAD, *_V1_TEXT, s("model", doc="the model that answered (v2)."), opt("function_call", "FunctionCall"),
         opt("search_info", "dict[str, Any]"))

# ---------------------------------------------------------------------------- inference answers
#: what the official ``create()`` sets on a v2 answer: the latencies and the body as received
_OFFICIAL = (opt("statistic", "Statistic"), f("raw", "Any", "None", doc="the body as received (``create()``)."))
CHAT_ANSWER = AnswerModel("ChatAnswer", "A chat answer: v1 (``result``) or v2/OpenAI (``choices``).",
                          (*_CHAT, f("choices", "list[Choice]", "[]"), *_OFFICIAL))
CHAT_CHUNK = AnswerModel("ChatChunk", "One chunk of a streamed chat answer: v1 (``result``) or v2 (``delta``).",
                         (*_CHAT, *_V1_CHUNK, f("choices", "list[Choice]", "[]"), opt("web_search", "SearchResult"),
                          *_OFFICIAL))
COMPLETION_ANSWER = AnswerModel("CompletionAnswer", "A completion answer.", (*_HEAD, *_V1_TEXT))
COMPLETION_CHUNK = AnswerModel("CompletionChunk", "One chunk of a streamed completion.",
                               (*_HEAD, *_V1_TEXT, *_V1_CHUNK))
EMBEDDING_ANSWER = AnswerModel("EmbeddingAnswer", "The vectors of an embedding call, in ``texts``' order.",
                               (*_HEAD, f("data", "list[EmbeddingItem]", "[]")))
PLUGIN_ANSWER = AnswerModel("PluginAnswer", "A plugin's answer.", (
    *_HEAD, *_V1_TEXT, opt("meta_info", "dict[str, Any]"), opt("plugin_info", "list[dict[str, Any]]"),
    opt("log_id", "str | int")))
PLUGIN_CHUNK = AnswerModel("PluginChunk", "One chunk of a streamed plugin answer.",
                           (*PLUGIN_ANSWER.fields, *_V1_CHUNK))
TEXT2IMAGE_ANSWER = AnswerModel("Text2ImageAnswer", "The images drawn.", (*_HEAD, f("data", "list[ImageItem]", "[]")))
IMAGE2TEXT_ANSWER = AnswerModel("Image2TextAnswer", "An answer about an image.", (*_HEAD, *_V1_TEXT))
IMAGE2TEXT_CHUNK = AnswerModel("Image2TextChunk", "One chunk of a streamed answer about an image.",
                               (*_HEAD, *_V1_TEXT, *_V1_CHUNK))
RERANKER_ANSWER = AnswerModel("RerankerAnswer", "The documents ordered by relevance, most relevant first.",
                              (*_HEAD, f("results", "list[RerankItem]", "[]")))

# ---------------------------------------------------------------------------- console
#: a console answer's envelope: v1 ``{log_id, result}``, v2 ``{requestId, result}``
_CONSOLE = (s("log_id", doc="the v1 call's log id."), s("request_id", "requestId", doc="the v2 call's id."))


def console(name: str, doc: str, result: str) -> AnswerModel:
    """The answer whose ``result`` is a ``result`` model (its default when the answer has none)."""
    return AnswerModel(name, doc, (*_CONSOLE, f("result", result, f"{result}()")))


FT_JOB_CREATED = AnswerModel("FineTuneJobCreated", "A v2 fine-tune job created.", (s("job_id", "jobId"),))
FT_TASK_CREATED = AnswerModel("FineTuneTaskCreated", "A v2 fine-tune task (one run) created.",
                              (s("job_id", "jobId"), s("task_id", "taskId")))
_PROGRESS = (f("current_step", "int", "0", wire="currentStep"), f("total_steps", "int", "0", wire="totalSteps"),
             f("loss_curve", "list[Any]", "[]", wire="lossCurve", doc="``[[step, loss], ...]``."),
             opt("elapsed_seconds", "float", "elapsedSeconds"), opt("eta_seconds", "float", "etaSeconds"),
             opt("error_message", "str", "errorMessage"), f("metrics", "dict[str, Any]", "{}"))
FT_TASK = AnswerModel("FineTuneTask", "A v2 fine-tune task (one run): its state and progress.", (
    s("task_id", "taskId"), s("job_id", "jobId"), s("job_name", "jobName"), s("model"),
    s("train_mode", "trainMode"), s("parameter_scale", "parameterScale"),
    s("run_status", "runStatus", doc="Waiting, Running, Done, Failed or Stopped."),
    s("run_progress", "runProgress", doc='e.g. ``"40%"``.'), s("vdl_link", "vdlLink"),
    s("create_date", "createDate"), opt("finish_date", "str", "finishDate"), *_PROGRESS))
FT_V1_TASK = AnswerModel("FineTuneV1Task", "A v1 fine-tune task created (the container of jobs).", (
    f("id", "int", "0"), s("uuid"), s("name"), s("description"), s("create_time", "createTime")))
FT_V1_JOB_CREATED = AnswerModel("FineTuneV1JobCreated", "A v1 fine-tune job (one run) created.",
                                (f("id", "int", "0"), s("uuid")))
FT_V1_JOB = AnswerModel("FineTuneV1Job", "A v1 fine-tune job (one run): its state and progress.", (
    f("id", "int", "0"), s("uuid"), f("task_id", "int", "0", wire="taskId"), s("task_name", "taskName"),
    s("train_type", "trainType"), s("train_mode", "trainMode"), s("peft_type", "peftType"),
    s("train_status", "trainStatus"), f("progress", "int", "0"), s("vdl_link", "vdlLink"),
    opt("start_time", "str", "startTime"), opt("finish_time", "str", "finishTime"), *_PROGRESS))

MODEL_VERSION = AnswerModel("ModelVersion", "A v1 model version.", (
    f("model_id", "int", "0", wire="modelId"), s("model_id_str", "modelIdStr"), s("model_name", "modelName"),
    f("model_version_id", "int", "0", wire="modelVersionId"), s("model_version_id_str", "modelVersionIdStr"),
    s("version"), s("state", doc="Creating, Ready or Fail."), s("source_type", "sourceType"),
    s("train_type", "trainType"), s("create_time", "createTime"), s("description"),
    f("source_extra", "dict[str, Any]", "{}", wire="sourceExtra")))
MODEL_INFO = AnswerModel("ModelV1", "A v1 model and its versions.", (
    f("model_id", "int", "0", wire="modelId"), s("model_id_str", "modelIdStr"), s("model_name", "modelName"),
    s("source", doc="PlatformPreset or UserCreate."), s("train_type", "trainType"), s("create_time", "createTime"),
    f("model_version_list", "list[ModelVersion]", "[]", wire="modelVersionList")))
MODEL_V2 = AnswerModel("ModelV2", "A v2 model (a version of a model set).", (
    s("model_id", "modelId"), s("model_set_id", "modelSetId"), s("model_set_name", "modelSetName"), s("version"),
    s("state"), s("source_type", "sourceType"), f("source_info", "dict[str, Any]", "{}", wire="sourceInfo"),
    s("create_date", "createDate")))

SERVICE_CREATED = AnswerModel("ServiceCreated", "A v2 service created.",
                              (s("service_id", "serviceId"), s("instance_id", "instanceId")))
SERVICE_V2 = AnswerModel("ServiceV2", "A v2 service: where it answers and its state.", (
    s("service_id", "serviceId"), s("name"), s("model_set_id", "modelSetId"), s("model_id", "modelId"),
    s("url"), s("service_type", "serviceType"), s("run_status", "runStatus", doc="Deploying, Running, ..."),
    s("charge_status", "chargeStatus"), f("resource_config", "dict[str, Any]", "{}", wire="resourceConfig"),
    s("create_time", "createTime"), opt("error_message", "str", "errorMessage")))

SERVICE_V1_CREATED = AnswerModel("ServiceV1Created", "A v1 service applied for.",
                                 (f("service_id", "int", "0", wire="serviceId"),))
SERVICE_V1 = AnswerModel("ServiceV1", "A v1 service: where it answers and its state.", (
    f("id", "int", "0"), f("service_id", "int", "0", wire="serviceId"), s("service_id_str", "serviceIdStr"),
    s("name"), s("uri", doc="the endpoint suffix the service answers on."),
    f("model_id", "int", "0", wire="modelId"), f("model_version_id", "int", "0", wire="modelVersionId"),
    s("model_name", "modelName"), s("service_status", "serviceStatus", doc="New, Deploying, Serving, ..."),
    s("create_time", "createTime"), opt("error_message", "str", "errorMessage")))

DATASET_VERSION = AnswerModel("DatasetVersionInfo", "A v1 dataset's version: its import, export and release.", (
    f("dataset_pk", "int", "0", wire="datasetPK"), s("bml_dataset_id", "bmlDatasetId"),
    f("version_id", "int", "0", wire="versionId"), f("import_status", "int", "0", wire="importStatus"),
    f("import_progress", "int", "0", wire="importProgress"), f("export_status", "int", "0", wire="exportStatus"),
    f("release_status", "int", "0", wire="releaseStatus"), s("release_storage_path", "releaseStoragePath"),
    f("project_type", "int", "0", wire="projectType"), f("template_type", "int", "0", wire="templateType"),
    s("storage_type", "storageType"), f("entity_count", "int", "0", wire="entityCount"),
    f("annotated_entity_count", "int", "0", wire="annotatedEntityCount"),
    f("storage", "dict[str, Any]", "{}")))
DATASET_INFO = AnswerModel("DatasetInfo", "A v1 dataset.", (
    f("group_pk", "int", "0", wire="groupPK"), s("name"), f("data_type", "int", "0", wire="dataType"),
    f("version_info", "DatasetVersionInfo", "DatasetVersionInfo()", wire="versionInfo")))

EVAL_CREATED = AnswerModel("EvaluationCreated", "A v1 evaluation task created.",
                           (f("eval_id", "int", "0", wire="evalId"), s("eval_id_str", "evalIdStr")))
EVAL_UNIT = AnswerModel("EvaluationUnit", "One model version an evaluation runs.", (
    f("model_version_id", "int", "0", wire="modelVersionId"), f("model_id", "int", "0", wire="modelId"),
    s("model_name", "modelName"), s("state")))
EVAL_INFO = AnswerModel("EvaluationInfo", "A v1 evaluation task: its state and units.", (
    f("evaluation_id", "int", "0", wire="evaluationId"), s("evaluation_id_str", "evaluationIdStr"), s("name"),
    s("state", doc="Pending, Doing, Done, Failed, ..."),
    f("eval_units", "list[EvaluationUnit]", "[]", wire="evalUnits"),
    f("dataset_id", "int", "0", wire="datasetId"), s("dataset_name", "datasetName"), s("create_time", "createTime"),
    f("eval_standard_conf", "dict[str, Any]", "{}", wire="evalStandardConf"),
    opt("error_message", "str", "errorMessage")))

BATCH_TASK_CREATED = AnswerModel("BatchTaskCreated", "An offline batch-inference task created.",
                                 (s("task_id", "taskId"),))
BATCH_TASK = AnswerModel("BatchTask", "An offline batch-inference task: its state, counts and files.", (
    s("task_id", "taskId"), s("name"), s("description"), s("run_status", "runStatus",
                                                          doc="Queuing, Running, Done, Stopping, Stopped, ..."),
    s("input_bos_uri", "inputBosUri"), s("output_bos_uri", "outputBosUri"), s("create_time", "createTime"),
    opt("finish_time", "str", "finishTime"), f("total_count", "int", "0", wire="totalCount"),
    f("succeeded_count", "int", "0", wire="succeededCount"), f("failed_count", "int", "0", wire="failedCount"),
    f("input_token_usage", "int", "0", wire="inputTokenUsage"),
    f("output_token_usage", "int", "0", wire="outputTokenUsage"),
    f("run_seconds", "float", "0.0", wire="runSeconds", doc="seconds it has run (qfnb's)."),
    opt("error_reason", "str", "errorReason")))
PAGE_INFO = AnswerModel("PageInfo", "Where a v2 listing's page ends.", (
    s("marker"), f("max_keys", "int", "0", wire="maxKeys"), f("is_truncated", "bool", "False", wire="isTruncated"),
    s("next_marker", "nextMarker")))
BATCH_TASK_LIST = AnswerModel("BatchTaskList", "A page of offline batch-inference tasks.", (
    f("task_list", "list[BatchTask]", "[]", wire="taskList"),
    f("page_info", "PageInfo", "PageInfo()", wire="pageInfo")))
FT_JOB = AnswerModel("FineTuneJob", "A v2 fine-tune job (the container of runs).", (
    s("job_id", "jobId"), s("name"), s("description"), s("model"), s("train_mode", "trainMode"),
    s("parameter_scale", "parameterScale"), s("create_date", "createDate")))
FT_JOB_LIST = AnswerModel("FineTuneJobList", "A page of v2 fine-tune jobs.", (
    f("job_list", "list[FineTuneJob]", "[]", wire="jobList"),
    f("page_info", "PageInfo", "PageInfo()", wire="pageInfo")))
FT_TASK_LIST = AnswerModel("FineTuneTaskList", "A page of a v2 fine-tune job's tasks (runs).", (
    f("task_list", "list[FineTuneTask]", "[]", wire="taskList"),
    f("page_info", "PageInfo", "PageInfo()", wire="pageInfo")))
SERVICE_V2_LIST = AnswerModel("ServiceV2List", "A page of v2 services.", (
    f("service_list", "list[ServiceV2]", "[]", wire="serviceList"),
    f("page_info", "PageInfo", "PageInfo()", wire="pageInfo")))

DATASET_CREATED = AnswerModel("DatasetCreated", "A v1 dataset created (empty).", (
    opt("id", "int | str", doc="the dataset's number."), f("dataset_id", "int | str", '""', wire="datasetId"),
    opt("group_pk", "int | str", "groupPK"),
    opt("version_id", "int", "versionId"), f("storage_info", "dict[str, Any]", "{}", wire="storageInfo")))
ETL_TASK = AnswerModel("EtlTask", "A v1 dataset-cleaning (ETL) task, as its detail or a listing shows it.", (
    opt("id", "int | str"), opt("etl_id", "int | str", "etlId"), opt("etl_str_id", "int | str", "etlStrId"),
    opt("dest_dataset_id", "int | str", "destDatasetId"), opt("dest_dataset_str_id", "int | str", "destDatasetStrId"),
    opt("process_status", "int", "processStatus", doc="an ``ETLTaskStatus``.")))
ETL_TASK_LIST = AnswerModel("EtlTaskList", "A page of ETL tasks.", (
    f("processing_count", "int", "0", wire="processingCount"), f("items", "list[EtlTask]", "[]")))
PROMPT_CREATED = AnswerModel("PromptCreated", "A prompt template created or updated.", (
    f("template_id", "int", "0", wire="templateId"), s("template_pk", "templatePK")))
PROMPT_LABEL = AnswerModel("PromptLabelInfo", "A prompt template's label.", (
    f("label_id", "int | str", "0", wire="labelId"), s("label_name", "labelName"), s("color")))
PROMPT_INFO = AnswerModel("PromptInfo", "A v1 prompt template.", (
    *PROMPT_CREATED.fields, s("template_name", "templateName"), s("template_content", "templateContent"),
    s("template_variables", "templateVariables", doc="the variables, comma-separated."),
    s("variable_identifier", "variableIdentifier", doc='e.g. ``"{}"``.'),
    opt("negative_template_content", "str", "negativeTemplateContent"),
    s("negative_template_variables", "negativeTemplateVariables"),
    f("labels", "list[PromptLabelInfo]", "[]"), opt("creator_name", "str", "creatorName"),
    f("type", "int", "2", doc="a ``PromptType`` (1 preset, 2 the user's)."),
    f("scene_type", "int", "1", wire="sceneType"), f("framework_type", "int", "0", wire="frameworkType")))
PROMPT_LIST = AnswerModel("PromptList", "A page of v1 prompt templates.", (
    f("total", "int", "0"), f("items", "list[PromptInfo]", "[]")))

FT_SUPPORTED_SCALE = AnswerModel("FineTuneSupportedScale", "A parameter scale (PEFT type) of a train mode.", (
    s("parameter_scale", "parameterScale"),
    f("hyper_parameters", "list[dict[str, Any]]", "[]", wire="supportHyperParameterConfig",
      doc="each hyperparameter's ``key``, ``default`` and bounds (``checkType``, ``checkValue``)."),))
FT_SUPPORTED_MODE = AnswerModel("FineTuneSupportedMode", "A train mode of a base model and its parameter scales.", (
    s("train_mode", "trainMode"),
    f("support_parameter_scale", "list[FineTuneSupportedScale]", "[]", wire="supportParameterScale")))
FT_SUPPORTED_MODEL = AnswerModel("FineTuneSupportedModel", "A base model a v2 fine-tune can start from.", (
    s("model"), s("base_model", "baseModel"), s("model_type", "modelType"),
    f("support_train_mode", "list[FineTuneSupportedMode]", "[]", wire="supportTrainMode")))

PARTS = (USAGE, FUNCTION_CALL, TOOL_FUNCTION, TOOL_CALL, CHOICE_MESSAGE, CHOICE, STATISTIC, SEARCH_RESULT,
         EMBEDDING_ITEM, IMAGE_ITEM, RERANK_ITEM, FT_JOB_CREATED, FT_TASK_CREATED, FT_TASK, FT_V1_TASK,
         FT_V1_JOB_CREATED, FT_V1_JOB, MODEL_VERSION, MODEL_INFO, MODEL_V2, SERVICE_CREATED, SERVICE_V2,
         SERVICE_V1_CREATED, SERVICE_V1,
         DATASET_VERSION, DATASET_INFO, EVAL_CREATED, EVAL_UNIT, EVAL_INFO, BATCH_TASK_CREATED, BATCH_TASK, PAGE_INFO,
         BATCH_TASK_LIST, FT_JOB, FT_JOB_LIST, FT_TASK_LIST, SERVICE_V2_LIST, DATASET_CREATED, ETL_TASK,
         ETL_TASK_LIST, PROMPT_CREATED, PROMPT_LABEL, PROMPT_INFO, PROMPT_LIST, FT_SUPPORTED_SCALE,
         FT_SUPPORTED_MODE, FT_SUPPORTED_MODEL)

#: every model, parts before the models that hold them
ANSWERS = (
    *PARTS, CHAT_ANSWER, CHAT_CHUNK, COMPLETION_ANSWER, COMPLETION_CHUNK, EMBEDDING_ANSWER, PLUGIN_ANSWER,
    PLUGIN_CHUNK, TEXT2IMAGE_ANSWER, IMAGE2TEXT_ANSWER, IMAGE2TEXT_CHUNK, RERANKER_ANSWER,
    console("FineTuneJobCreatedAnswer", "``FineTune.V2.create_job``'s answer.", "FineTuneJobCreated"),
    console("FineTuneTaskCreatedAnswer", "``FineTune.V2.create_task``'s answer.", "FineTuneTaskCreated"),
    console("FineTuneTaskAnswer", "``FineTune.V2.task_detail``'s answer.", "FineTuneTask"),
    console("FineTuneV1TaskAnswer", "``FineTune.create_task``'s answer.", "FineTuneV1Task"),
    console("FineTuneV1JobCreatedAnswer", "``FineTune.create_job``'s answer.", "FineTuneV1JobCreated"),
    console("FineTuneV1JobAnswer", "``FineTune.get_job``'s answer.", "FineTuneV1Job"),
    console("ModelInfoAnswer", "``Model.list``'s answer (a model and its versions).", "ModelV1"),
    console("ModelVersionAnswer", "``Model.detail``'s answer (one version).", "ModelVersion"),
    console("ModelV2Answer", "``Model.V2.describe_model``'s answer.", "ModelV2"),
    console("ServiceCreatedAnswer", "``Service.V2.create_service``'s answer.", "ServiceCreated"),
    console("ServiceV2Answer", "``Service.V2.service_detail``'s answer.", "ServiceV2"),
    console("ServiceV1CreatedAnswer", "``Service.create``'s answer.", "ServiceV1Created"),
    console("ServiceV1Answer", "``Service.get``'s answer.", "ServiceV1"),
    console("DatasetInfoAnswer", "``Data.get_dataset_info``'s answer.", "DatasetInfo"),
    console("EvaluationCreatedAnswer", "``Model.create_evaluation_task``'s answer.", "EvaluationCreated"),
    console("EvaluationInfoAnswer", "``Model.get_evaluation_info``'s answer.", "EvaluationInfo"),
    console("BatchTaskCreatedAnswer", "``Data.create_offline_batch_inference_task``'s answer.", "BatchTaskCreated"),
    console("BatchTaskAnswer", "``Data.get_offline_batch_inference_task``'s answer.", "BatchTask"),
    console("BatchTaskListAnswer", "``Data.list_offline_batch_inference_task``'s answer.", "BatchTaskList"),
    console("FineTuneJobListAnswer", "``FineTune.V2.job_list``'s answer.", "FineTuneJobList"),
    console("FineTuneTaskListAnswer", "``FineTune.V2.task_list``'s answer.", "FineTuneTaskList"),
    console("ServiceV2ListAnswer", "``Service.V2.service_list``'s answer.", "ServiceV2List"),
    AnswerModel("EvaluableModelListAnswer", "``Model.evaluable_model_list``'s answer.",
                (*_CONSOLE, f("result", "list[ModelV1]", "[]"))),
    console("DatasetCreatedAnswer", "``Data.create_bare_dataset``'s answer.", "DatasetCreated"),
    AnswerModel("EtlTaskCreatedAnswer", "``Data.create_dataset_etl_task``'s answer: the task's id, or ``true``.",
                (*_CONSOLE, f("result", "bool | int | str", "False"))),
    console("EtlTaskAnswer", "``Data.get_dataset_etl_task_info``'s answer.", "EtlTask"),
    console("EtlTaskListAnswer", "``Data.get_dataset_etl_task_list``'s answer.", "EtlTaskList"),
    console("PromptCreatedAnswer", "``Prompt.create``'s and ``Prompt.update``'s answer.", "PromptCreated"),
    console("PromptInfoAnswer", "``Prompt.info``'s answer.", "PromptInfo"),
    console("PromptListAnswer", "``Prompt.list``'s answer.", "PromptList"),
    AnswerModel("FineTuneSupportedModelsAnswer", "``FineTune.V2.supported_models``'s answer.",
                (*_CONSOLE, f("result", "list[FineTuneSupportedModel]", "[]"))),
)

#: the official SDK's names (``qianfan.resources.typing_client``) and the answer model each names:
#: ``python tools/generate.py`` writes ``qfnb/resources/typing_client.py`` as these aliases
OFFICIAL_NAMES = {
    "Completion": "ChatAnswer", "CompletionChunk": "ChatChunk", "Choice": "Choice", "CompletionChunkChoice": "Choice",
    "ChatCompletionMessage": "ChoiceMessage", "ChoiceDelta": "ChoiceMessage", "ToolCall": "ToolCall",
    "Function": "ToolFunction", "CompletionUsage": "TokenUsage", "CompletionStatistic": "Statistic",
    "SearchResult": "SearchResult",
}
