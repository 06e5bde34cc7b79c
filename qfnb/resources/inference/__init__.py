"""The inference API: ChatCompletion, Completion, Embedding, Plugin, Text2Image, Image2Text, Reranker,
Tokenizer, Messages, Function; their calls are generated from ``tools/spec/inference.py``.
Part of ``qfnb.resources``: may import ``qfnb._core`` and ``qfnb.protocol`` only."""

from qfnb._core.http.response import QfResponse

from .batching.results import BatchFuture, read_results
from .chat import ChatCompletion
from .completion import Completion
from .embedding import Embedding
from .function import Function
from .images.image2text import Image2Text
from .images.text2image import Text2Image
from .messages import Messages, QfMessages, QfRole, Role
from .plugin import Plugin
from .reranker import Reranker
from .targets import QfLLMInfo
from .tokenizer import Tokenizer

__all__ = ["BatchFuture", "ChatCompletion", "Completion", "Embedding", "Function", "Image2Text", "Messages", "Plugin",
           "QfLLMInfo", "QfMessages", "QfResponse", "QfRole", "Reranker", "Response", "Role", "Text2Image", "Tokenizer",
           "read_results"]

#: the official SDK's name for :class:`QfResponse`
Response = QfResponse
