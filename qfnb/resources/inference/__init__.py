"""The inference API: ChatCompletion, Completion, Embedding, Plugin, Text2Image, Messages."""

from qfnb._core.response import QfResponse

from .batch import BatchFuture, read_results
from .chat import ChatCompletion
from .completion import Completion
from .embedding import Embedding
from .messages import Messages, QfMessages, QfRole, Role
from .plugin import Plugin
from .text2image import Text2Image

__all__ = ["BatchFuture", "ChatCompletion", "Completion", "Embedding", "Messages", "Plugin", "QfMessages",
           "QfResponse", "QfRole", "Response", "Role", "Text2Image", "read_results"]

#: the official SDK's name for :class:`QfResponse`
Response = QfResponse
