"""The platform's data-cleaning (ETL) operators, for ``Dataset.online_data_process``: each is
sent as ``{"name": operator_name, "args": {its fields}}`` under its ``operator_type``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = [
    "DeduplicationSimhash", "Deduplicator", "DesensitizationProcessor", "ExceptionRegulator", "Filter",
    "FilterCheckCharacterRepetitionRemoval", "FilterCheckFlaggedWords", "FilterCheckLangId",
    "FilterCheckNumberWords", "FilterCheckPerplexity", "FilterCheckSpecialCharacters",
    "FilterCheckWordRepetitionRemoval", "QianfanOperator", "RemoveEmoji", "RemoveInvisibleCharacter",
    "RemoveNonMeaningCharacters", "RemoveWebIdentifiers", "ReplaceEmails", "ReplaceIdentifier", "ReplaceIp",
    "ReplaceTraditionalChineseToSimplified", "ReplaceUniformWhitespace",
]


class QianfanOperator(BaseModel):
    """One ETL operator: its platform name, its kind, and its arguments (the other fields)."""

    operator_name: str
    operator_type: str

    def operation(self) -> dict[str, Any]:
        """``{"name": ..., "args": {...}}`` as the ETL task's ``operationsV2`` lists it."""
        return {"name": self.operator_name, "args": self.model_dump(exclude={"operator_name", "operator_type"})}


class ExceptionRegulator(QianfanOperator):
    operator_type: str = "clean"


class Filter(QianfanOperator):
    operator_type: str = "filter"


class Deduplicator(QianfanOperator):
    operator_type: str = "deduplication"


class DesensitizationProcessor(QianfanOperator):
    operator_type: str = "desensitization"


class RemoveEmoji(ExceptionRegulator):
    operator_name: str = "remove_emoji"


class RemoveInvisibleCharacter(ExceptionRegulator):
    operator_name: str = "remove_invisible_character"


class ReplaceUniformWhitespace(ExceptionRegulator):
    operator_name: str = "replace_uniform_whitespace"


class RemoveNonMeaningCharacters(ExceptionRegulator):
    operator_name: str = "remove_non_meaning_characters"


class ReplaceTraditionalChineseToSimplified(ExceptionRegulator):
    operator_name: str = "replace_traditional_chinese_to_simplified"


class RemoveWebIdentifiers(ExceptionRegulator):
    operator_name: str = "remove_web_identifiers"


class FilterCheckNumberWords(Filter):
    operator_name: str = "filter_check_number_words"
    number_words_min_cutoff: int = 1
    number_words_max_cutoff: int = 10000


class FilterCheckWordRepetitionRemoval(Filter):
    operator_name: str = "filter_check_word_repetition_removal"
    word_repetition_max_cutoff: float


class FilterCheckCharacterRepetitionRemoval(Filter):
    operator_name: str = "filter_check_character_repetition_removal"
    default_character_repetition_max_cutoff: float


class FilterCheckSpecialCharacters(Filter):
    operator_name: str = "filter_check_special_characters"
    special_characters_max_cutoff: float


class FilterCheckFlaggedWords(Filter):
    operator_name: str = "filter_check_flagged_words"
    flagged_words_max_cutoff: float


class FilterCheckLangId(Filter):
    operator_name: str = "filter_check_lang_id"
    lang_id_min_cutoff: float


class FilterCheckPerplexity(Filter):
    operator_name: str = "filter_check_perplexity"
    perplexity_max_cutoff: int


class DeduplicationSimhash(Deduplicator):
    operator_name: str = "deduplication_simhash"
    distance: float


class ReplaceEmails(DesensitizationProcessor):
    operator_name: str = "replace_emails"


class ReplaceIp(DesensitizationProcessor):
    operator_name: str = "replace_ip"


class ReplaceIdentifier(DesensitizationProcessor):
    operator_name: str = "replace_identifier"
