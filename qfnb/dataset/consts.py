"""The official SDK's ``qianfan.dataset.consts``: the reserved column names and cache paths."""

from __future__ import annotations

from pathlib import Path

__all__ = ["LLMOutputColumnName", "NewInputChatColumnName", "NewInputPromptColumnName", "OldReferenceColumnName",
           "QianfanDataGroupColumnName", "QianfanDatasetLocalCacheDir", "QianfanDatasetPackColumnName",
           "QianfanLocalCacheDir"]

#: the column of a packed dataset (one whole entity per row)
QianfanDatasetPackColumnName = "_pack"
#: the column holding a row's conversation number in a grouped dataset
QianfanDataGroupColumnName = "_group"
NewInputPromptColumnName = "input_prompt"
NewInputChatColumnName = "input_chats"
LLMOutputColumnName = "llm_output"
OldReferenceColumnName = "expected_output"
RequestLatencyColumnName = "request_complete_latency"
FirstTokenLatencyColumnName = "first_token_latency"
LLMTagColumnName = "llm_tag"
#: where the official SDK caches downloads (qfnb keeps none of its own there)
QianfanLocalCacheDir = Path.home() / ".qianfan_cache"
QianfanDatasetLocalCacheDir = QianfanLocalCacheDir / "dataset"
