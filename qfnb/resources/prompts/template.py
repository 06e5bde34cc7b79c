"""The official SDK's client-side ``Prompt`` (``qianfan.common.Prompt``): a template with variables,
rendered locally; kept in files or, through :mod:`qfnb.common.hub`, in the platform's prompt
templates (the console :class:`qfnb.resources.Prompt`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from qfnb._core.errors import ValidationError
from qfnb.resources import Prompt as PromptResource
from qfnb.resources.console.builders.prompt import split_identifier, template_variables
from qfnb.resources.console.consts import PromptFrameworkType, PromptSceneType, PromptScoreStandard, PromptType
from qfnb.resources.prompts.optimize import PromptEvaluateResult as EvaluateResult
from qfnb.resources.prompts.optimize import (
    evaluate_prompts,
    optimization_operations,
    optimize_template,
)

logger = logging.getLogger("qfnb.prompt")

Identifier = Literal["{}", "{{}}", "[]", "[[]]", "()", "(())"]

__all__ = ["Identifier", "Prompt", "PromptLabel"]


@dataclass
class PromptLabel:
    """A label of a platform prompt (id, name, the console's colour)."""

    id: int | str
    name: str
    color: str = ""


class Prompt:
    """A prompt template: ``Prompt(template="Hi {name}")``, ``render(name="Ann")`` -> ``("Hi Ann", None)``.

    ``variables`` are found in the template unless given (2-30 letters, digits or underscores,
    as the platform requires). A Text2Image prompt also has a ``negative_template``.
    """

    def __init__(self, template: str | None = None, name: str | None = None, id: str | int | None = None,
                 identifier: Identifier = "{}", variables: Sequence[str] | None = None,
                 labels: Sequence[PromptLabel] = (), type: PromptType = PromptType.User,
                 scene_type: PromptSceneType = PromptSceneType.Text2Text,
                 framework_type: PromptFrameworkType = PromptFrameworkType.NotUse,
                 negative_template: str | None = None, negative_variables: Sequence[str] | None = None,
                 creator_name: str | None = None) -> None:
        if template is None:
            raise ValidationError("template", "is required (load a platform prompt with qfnb.common.hub.load)")
        if not isinstance(template, str):
            raise ValidationError("template", f"must be a str, got {type(template).__name__}")
        self.id = id
        self.name = name
        self.template = template
        self.identifier: Identifier = identifier
        self.variables = list(variables) if variables is not None else template_variables(template, identifier)
        self.labels = list(labels)
        self.type = PromptType(type)
        self.scene_type = PromptSceneType(scene_type)
        self.framework_type = PromptFrameworkType(framework_type)
        self.negative_template = negative_template
        self.negative_variables: list[str] | None = None
        if negative_template is not None:
            self.negative_variables = (list(negative_variables) if negative_variables is not None
                                       else template_variables(negative_template, identifier))
        self.creator_name = creator_name
        self._mode = "local"

    def __repr__(self) -> str:
        where = f"name={self.name!r}, " if self.name else ""
        return f"Prompt({where}template={self.template!r}, variables={self.variables})"

    # ---- rendering ------------------------------------------------------------------------------

    def render(self, **kwargs: Any) -> tuple[str, str | None]:
        """The template (and negative template) with every variable replaced; a missing one is an error."""
        left, right = split_identifier(self.identifier)

        def fill(text: str, names: Sequence[str]) -> str:
            missing = [v for v in names if v not in kwargs]
            if missing:
                raise ValidationError(missing[0], f"variable `{missing[0]}` is not provided "
                                                  f"(the prompt takes {', '.join(names)})")
            for v in names:
                text = text.replace(f"{left}{v}{right}", str(kwargs[v]))
            return text

        negative = None
        if self.negative_template is not None:
            negative = fill(self.negative_template, self.negative_variables or [])
        return fill(self.template, self.variables), negative

    def set_template(self, template: str) -> None:
        self.template = template
        self.variables = template_variables(template, self.identifier)

    def set_negative_template(self, template: str) -> None:
        self.negative_template = template
        self.negative_variables = template_variables(template, self.identifier)

    # ---- files ----------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, identifier: Identifier = "{}") -> Prompt:
        """A prompt whose template is the whole file."""
        return cls(template=Path(path).read_text(encoding="utf-8"), identifier=identifier)

    def save_to_file(self, path: str | Path) -> None:
        """Write the template (only) to ``path``."""
        Path(path).write_text(self.template, encoding="utf-8")

    # ---- the platform (the hub's pull/push; see qfnb.common.hub) ----------------------------------

    @classmethod
    def _hub_pull(cls, name: str) -> Prompt:
        """The platform prompt named ``name`` (the user's first, then the presets)."""
        info = None
        for kind in (PromptType.User, PromptType.Preset):
            items = PromptResource.list(name=name, type=kind).parsed.result.items
            info = next((item for item in items if item.template_name == name), None)
            if info is not None:
                break
        if info is None:
            raise ValidationError("name", f"no prompt named {name!r} on the platform")
        prompt = cls(name=info.template_name, id=info.template_pk, template=info.template_content,
                     variables=[v for v in info.template_variables.split(",") if v],
                     labels=[PromptLabel(lb.label_id, lb.label_name, lb.color) for lb in info.labels],
                     identifier=cast(Identifier, info.variable_identifier or "{}"), type=PromptType(info.type),
                     scene_type=PromptSceneType(info.scene_type),
                     framework_type=PromptFrameworkType(info.framework_type), creator_name=info.creator_name)
        if prompt.scene_type is PromptSceneType.Text2Image:
            prompt.negative_template = info.negative_template_content
            prompt.negative_variables = [v for v in info.negative_template_variables.split(",") if v]
        prompt._mode = "remote"
        return prompt

    def _hub_push(self) -> None:
        """Create the prompt on the platform (a local one) or update it (one pulled from there)."""
        if self.name is None:
            raise ValidationError("name", "is required to save a prompt on the platform")
        label_ids = [label.id for label in self.labels]
        if self._mode == "local" or self.id is None:
            resp = PromptResource.create(name=self.name, template=self.template, identifier=self.identifier,
                                         scene=self.scene_type, framework=self.framework_type,
                                         label_ids=label_ids, negative_template=self.negative_template,
                                         negative_variables=self.negative_variables)
        else:
            resp = PromptResource.update(id=self.id, name=self.name, label_ids=label_ids, template=self.template,
                                         identifier=self.identifier, negative_template=self.negative_template)
        self.id = resp.parsed.result.template_pk
        self._mode = "remote"

    def delete(self) -> None:
        """Delete the prompt from the platform (a local or preset prompt: a warning, nothing sent)."""
        if self._mode == "local" or self.id is None:
            logger.warning("a local prompt does not need to be deleted")
            return
        if self.type is PromptType.Preset:
            logger.warning("preset prompt %s cannot be deleted", self.name)
            return
        PromptResource.delete(id=self.id)
        self.id, self._mode = None, "local"

    # ---- the platform's optimisation and evaluation (qfnb.resources.prompts.optimize) --------------

    #: the official ``Prompt.PromptEvaluateResult``
    PromptEvaluateResult: ClassVar[type[EvaluateResult]] = EvaluateResult

    def optimize(self, optimize_quality: bool = True, simplify_prompt: bool = False,
                 iteration_round: Literal[1, 2] = 1, enable_cot: bool = False, app_id: int | None = None,
                 service_name: str | None = None, **kwargs: Any) -> Prompt:
        """The platform's optimised version of this prompt (an optimisation task, waited for)."""
        operations = optimization_operations(optimize_quality, simplify_prompt, iteration_round, enable_cot)
        text = optimize_template(self.template, operations, app_id=app_id, service_name=service_name, **kwargs)
        return Prompt(template=text, identifier=self.identifier)

    @classmethod
    def evaluate(cls, prompt_list: Sequence[Prompt], scenes: Sequence[dict[str, Any]], model: Any,
                 standard: PromptScoreStandard = PromptScoreStandard.Semantic) -> list[EvaluateResult]:
        """Each prompt's answers by ``model`` over ``scenes`` (``{"args": {...}, "expected": ...}``),
        summarised and scored by the platform."""
        return evaluate_prompts(prompt_list, scenes, model, standard)

    # ---- builders (the official texts) --------------------------------------------------------------

    @classmethod
    def base_prompt(cls, prompt: str, background: str = "", additional_data: str = "",
                    output_schema: str = "") -> str:
        """A basic-framework prompt: instruction, background, extra data, output format."""
        parts = [f"指令:{prompt}", f"背景信息:{background}" if background else "",
                 f"补充数据:{additional_data}" if additional_data else "",
                 f"输出格式:{output_schema}" if output_schema else ""]
        return "\n".join(parts)

    @classmethod
    def crispe_prompt(cls, statement: str, capacity: str = "", insight: str = "", personality: str = "",
                      experiment: str = "") -> str:
        """A CRISPE prompt: capacity and role, insight, statement, personality, experiment."""
        parts = [("能力与角色：", capacity), ("背景信息：", insight), ("指令：", statement),
                 ("输出风格：", personality), ("输出范围：", experiment)]
        return "\n".join(head + text for head, text in parts if text)

    @classmethod
    def fewshot_prompt(cls, prompt: str = "", examples: Sequence[tuple[str, str]] = ()) -> str:
        """A few-shot prompt: ``prompt`` then each (input, output) example."""
        if not examples:
            raise ValidationError("examples", "at least one (input, output) example is required")
        shots = "\n\n".join(f"输入:{given}\n输出:{expected}" for given, expected in examples)
        return f"{prompt}\n\n{shots}" if prompt else shots
