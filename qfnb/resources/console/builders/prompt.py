"""``Prompt``: the platform's prompt-template library (v1 ``/wenxinworkshop/prompt/...`` and
``Prompt.V2`` on ``/v2/promptTemplates``), with the official SDK's call names."""

from __future__ import annotations

import re
from typing import Any

from qfnb.protocol.wires.qianfan.routes import Console
from qfnb.resources.console.consts import PromptFrameworkType, PromptSceneType, PromptType

from ..sending.sender import ConsoleRequest, compact, invalid, require, surface

#: the classes the ``@surface`` builders below are exposed on (generated), with their docs
CLASSES = {
    "Prompt": "Prompt-template console API (v1); ``Prompt.V2`` for ``/v2/promptTemplates``.",
    "Prompt.V2": "``/v2/promptTemplates`` and ``/v2/promptLabels``.",
}


_V1 = "/wenxinworkshop/prompt"
_V2 = Console.V2_PROMPT_TEMPLATES
_V2_LABELS = Console.V2_PROMPT_LABELS
_IDENTIFIERS = ("{}", "{{}}", "[]", "[[]]", "()", "(())")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{1,29}")


def split_identifier(identifier: str) -> tuple[str, str]:
    """A variable identifier's opening and closing halves (``{{}}`` -> ``{{``, ``}}``)."""
    half = len(identifier) // 2
    return identifier[:half], identifier[half:]


def template_variables(template: str, identifier: str = "{}") -> list[str]:
    """The variable names in ``template`` (``{name}`` with the default identifier); each must be
    2-30 letters, digits or underscores, not starting with a digit, as the platform requires."""
    if identifier not in _IDENTIFIERS:
        raise invalid("identifier", f"must be one of {list(_IDENTIFIERS)}, got {identifier!r}")
    left, right = map(re.escape, split_identifier(identifier))
    found = re.findall(f"{left}(.*?){right}", template)
    for name in found:
        if not _NAME.fullmatch(name):
            raise invalid("template", f"variable {name!r}: use 2-30 letters, digits or underscores, "
                                      "not starting with a digit")
    return found


@surface("Prompt.create", answer="PromptCreatedAnswer")
def create(name: str, template: str, identifier: str = "{}", scene: PromptSceneType = PromptSceneType.Text2Text,
           framework: PromptFrameworkType = PromptFrameworkType.NotUse, variables: list[str] | None = None,
           label_ids: list[int | str] | None = None, negative_template: str | None = None,
           negative_variables: list[str] | None = None, **kwargs: Any) -> ConsoleRequest:
    """``template/create``: a new template (variables found in it unless given)."""
    scene, framework = PromptSceneType(scene), PromptFrameworkType(framework)
    body: dict[str, Any] = {"templateName": require(name, "name"), "templateContent": require(template, "template"),
                            "variableIdentifier": identifier, "sceneType": scene.value,
                            "frameworkType": framework.value, **kwargs}
    _add_variables(body, template, identifier, variables, {"labelIds": label_ids} if label_ids else {},
                   scene is PromptSceneType.Text2Image, negative_template, negative_variables)
    return ConsoleRequest(Console.PROMPT_CREATE, body)


def _add_variables(body: dict[str, Any], template: str, identifier: str, variables: list[str] | None,
                   labels: dict[str, Any], image: bool, negative_template: str | None,
                   negative_variables: list[str] | None) -> None:
    """A new template's variables (found in it unless given), then ``labels``, then for a
    text-to-image template its negative template and variables, put in ``body``."""
    body["templateVariables"] = ",".join(variables if variables is not None
                                         else template_variables(template, identifier))
    body.update(labels)
    if image:
        if negative_template:
            body["negativeTemplateContent"] = negative_template
        if negative_variables is None:
            negative_variables = template_variables(negative_template, identifier) if negative_template else []
        body["negativeTemplateVariables"] = ",".join(negative_variables)


@surface("Prompt.info", answer="PromptInfoAnswer")
def info(id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``template/info``."""
    return ConsoleRequest(Console.PROMPT_INFO, {"id": str(id), **kwargs})


@surface("Prompt.update", answer="PromptCreatedAnswer")
def update(id: int | str, name: str | None = None, label_ids: list[int | str] | None = None,
           template: str | None = None, identifier: str | None = None, negative_template: str | None = None,
           **kwargs: Any) -> ConsoleRequest:
    """``template/update``: change the fields given."""
    body = {"templateId": id, **kwargs, **compact({
        "templateName": name, "labelIds": label_ids or None, "variableIdentifier": identifier or None,
        "templateContent": template or None, "negativeTemplateContent": negative_template or None})}
    return ConsoleRequest(Console.PROMPT_UPDATE, body)


@surface("Prompt.delete")
def delete(id: int | str, **kwargs: Any) -> ConsoleRequest:
    """``template/delete``."""
    return ConsoleRequest(Console.PROMPT_DELETE, {"templateId": id, **kwargs})


@surface("Prompt.list", answer="PromptListAnswer")
def list_prompts(offset: int = 0, page_size: int = 10, name: str | None = None,
                 label_ids: list[int | str] | None = None, type: PromptType | None = None,
                 **kwargs: Any) -> ConsoleRequest:
    """``template/list``: a page of templates (the platform's presets and yours)."""
    body = {"offset": offset, "pageSize": page_size, "labelIds": list(label_ids or []), **kwargs,
            **compact({"name": name, "type": PromptType(type).value if type else None})}
    return ConsoleRequest(Console.PROMPT_LIST, body)


@surface("Prompt.list_labels")
def list_labels(offset: int = 0, page_size: int = 10, **kwargs: Any) -> ConsoleRequest:
    """``label/list``."""
    return ConsoleRequest(Console.PROMPT_LABEL_LIST, {"offset": offset, "pageSize": page_size, **kwargs})


@surface("Prompt.create_optimiztion_task")
def create_optimiztion_task(content: str, operations: list[Any], app_id: int | None = None,
                            service_name: str | None = None, **kwargs: Any) -> ConsoleRequest:
    """``singleOptimize/create`` (spelled as the official SDK spells it): improve a prompt."""
    body = {"content": require(content, "content"), "operations": require(operations, "operations", list), **kwargs,
            **compact({"appID": app_id, "serviceName": service_name})}
    return ConsoleRequest(f"{_V1}/singleOptimize/create", body)


@surface("Prompt.get_optimization_task")
def get_optimization_task(task_id: str, **kwargs: Any) -> ConsoleRequest:
    """``singleOptimize/info``."""
    return ConsoleRequest(f"{_V1}/singleOptimize/info", {"id": require(task_id, "task_id"), **kwargs})


@surface("Prompt.evaluation_score")
def evaluation_score(type: int, data: list[Any]) -> ConsoleRequest:
    """``evaluate/predict``: score answers against references."""
    return ConsoleRequest(f"{_V1}/evaluate/predict", {"type": type, "data": require(data, "data", list)})


@surface("Prompt.evaluation_summary")
def evaluation_summary(data: list[Any]) -> ConsoleRequest:
    """``evaluate/summary``."""
    return ConsoleRequest(f"{_V1}/evaluate/summary", {"data": require(data, "data", list)})


@surface("Prompt.V2.create")
def v2_create(template_name: str, template_content: str, labels: list[str] | None = None,
              variable_identifier: str = "{}", scene_type: str = "TextToText", variables: list[str] | None = None,
              negative_template: str | None = None, negative_variables: list[str] | None = None,
              hyper_parameters: dict[str, Any] | None = None, **kwargs: Any) -> ConsoleRequest:
    """``CreatePromptTemplate``."""
    body: dict[str, Any] = {"templateName": require(template_name, "template_name"),
                            "templateContent": require(template_content, "template_content"),
                            "variableIdentifier": variable_identifier, "sceneType": scene_type, **kwargs}
    _add_variables(body, template_content, variable_identifier, variables, {"labels": labels} if labels else {},
                   scene_type == "TextToImage", negative_template, negative_variables)
    if hyper_parameters:
        body["hyperParameters"] = hyper_parameters
    return ConsoleRequest(_V2, body, action="CreatePromptTemplate")


@surface("Prompt.V2.info")
def v2_info(template_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DescribePromptTemplate``."""
    return ConsoleRequest(_V2, {"templateId": str(template_id), **kwargs}, action="DescribePromptTemplate")


@surface("Prompt.V2.update")
def v2_update(template_id: str, template_name: str | None = None, labels: list[str] | None = None,
              template_content: str | None = None, variable_identifier: str | None = None,
              negative_template_content: str | None = None, hyper_parameters: dict[str, Any] | None = None,
              **kwargs: Any) -> ConsoleRequest:
    """``ModifyPromptTemplate``."""
    body = {"templateId": template_id, **kwargs, **compact({
        "templateName": template_name, "labels": labels or None, "variableIdentifier": variable_identifier or None,
        "templateContent": template_content or None, "negativeTemplateContent": negative_template_content or None,
        "hyperParameters": hyper_parameters or None})}
    return ConsoleRequest(_V2, body, action="ModifyPromptTemplate")


@surface("Prompt.V2.delete")
def v2_delete(template_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DeletePromptTemplate``."""
    return ConsoleRequest(_V2, {"templateId": template_id, **kwargs}, action="DeletePromptTemplate")


@surface("Prompt.V2.list")
def v2_list_prompts(marker: str | None = None, max_keys: int | None = None, page_reverse: bool | None = None,
                    name: str | None = None, label_ids: list[str] | None = None, type: str | None = None,
                    **kwargs: Any) -> ConsoleRequest:
    """``DescribePromptTemplates``."""
    body = {**kwargs, **compact({"name": name, "type": type or None, "labelIds": label_ids or None,
                                 "marker": marker or None, "maxKeys": max_keys or None,
                                 "pageReverse": page_reverse or None})}
    return ConsoleRequest(_V2, body, action="DescribePromptTemplates")


@surface("Prompt.V2.delete_label")
def v2_delete_label(label_id: str, **kwargs: Any) -> ConsoleRequest:
    """``DeletePromptLabel``."""
    return ConsoleRequest(_V2_LABELS, {"labelId": label_id, **kwargs}, action="DeletePromptLabel")


@surface("Prompt.V2.create_label")
def v2_create_label(name: list[str], **kwargs: Any) -> ConsoleRequest:
    """``CreatePromptLabel``."""
    return ConsoleRequest(_V2_LABELS, {"name": name, **kwargs}, action="CreatePromptLabel")


@surface("Prompt.V2.list_labels")
def v2_list_labels(marker: str | None = None, max_keys: int | None = None, page_reverse: bool | None = None,
                   **kwargs: Any) -> ConsoleRequest:
    """``DescribePromptLabels``."""
    body = {**kwargs, **compact({"marker": marker, "maxKeys": max_keys, "pageReverse": page_reverse})}
    return ConsoleRequest(_V2_LABELS, body, action="DescribePromptLabels")
