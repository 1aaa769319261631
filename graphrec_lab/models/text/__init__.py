"""Transformer text encoders: texts -> vectors, frozen (disk-cached) or LoRA-tuned.

``TextEncoder`` wraps a Hugging Face model with pooling; ``encode_cached`` stores frozen vectors
on disk keyed by ``TextEncoder.settings_key()``; ``resolve_model_path`` finds models offline-first.
"""

from graphrec_lab.models.text.cache import EmbeddingStore, default_cache_dir, encode_cached
from graphrec_lab.models.text.encoder import LORA_DEFAULTS, TextEncoder, tokenizer_fingerprint
from graphrec_lab.models.text.errors import TextEncoderError
from graphrec_lab.models.text.inputs import validate_texts
from graphrec_lab.models.text.resolve import DEFAULT_MODEL, bundled_minilm_path, resolve_model_path

__all__ = [
    "TextEncoder", "TextEncoderError", "encode_cached", "EmbeddingStore", "default_cache_dir",
    "resolve_model_path", "bundled_minilm_path", "validate_texts", "tokenizer_fingerprint",
    "DEFAULT_MODEL", "LORA_DEFAULTS",
]
