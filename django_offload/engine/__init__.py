"""
Server-side inference engine: the same models and sampling as the browser
engine, run with onnxruntime on the server.
"""

from .chat import ChatTemplate
from .embedding import EmbeddingModel
from .loading import ModelLoadError
from .params import GenerationParams, GenerationResult
from .registry import get_embedding_model, get_text_model, server_variant
from .sampling import Mulberry32
from .text import TextModel

__all__ = [
    "ChatTemplate",
    "EmbeddingModel",
    "GenerationParams",
    "GenerationResult",
    "ModelLoadError",
    "Mulberry32",
    "TextModel",
    "get_embedding_model",
    "get_text_model",
    "server_variant",
]
