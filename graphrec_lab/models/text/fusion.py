"""Item text as input features of any graph model: a frozen encoder (encode once, cached) or a
LoRA-tuned one trained jointly with the graph model.

``ItemTextFeatures`` owns the text encoder and the item texts; it hands the model an [I, H] feature
matrix at build time and, in LoRA mode, keeps it fresh:

* **frozen**: every distinct text is encoded once through the disk cache (``cache.encode_cached``);
  the features are a constant buffer of the model (``NodeInput``), and the encoder does no work during
  training.
* **lora**: a *bank* [I, H] holds every item's encoding. It is re-encoded (batched, no gradients) at
  the start of training and of every evaluation, so evaluation always sees the current adapters. In a
  training step only the batch's items are re-encoded, with gradients (at most ``max_live_texts`` of
  them, sampled uniformly from the batch's distinct items), and replace their bank rows for that step
  (``NodeInput.set_live_features``). A full-graph GNN needs every item's layer-0 vector each step;
  encoding all item texts with gradients per step would cost an epoch of encoder passes per step, so the
  rows outside the batch are the bank's (stale by at most one evaluation period), the way
  GNNAutoScale uses historical embeddings for out-of-batch nodes.

``center`` (off by default) subtracts the items' mean text vector and rescales to unit mean squared norm,
with statistics fixed at ``attach`` (LoRA rows reuse them). Sentence embeddings are anisotropic (on
amazon-scientific the mean MiniLM vector has half the norm of a typical item vector; mean pairwise
cosine 0.25), so without centring every item's projected text shares one large common component that
BPR must first learn to cancel; the rescale puts the projected text at the scale of the ID embeddings
(BERT-whitening, Su et al. 2021, does the full version of this). Measured on amazon-scientific it did
not help fused LightGCN (val NDCG@20 after 50 epochs 0.0600 centred vs 0.0642 raw; the README's text
section has the runs), so it stays an option.

The fusion itself (replace, add or gate the ID embeddings) is the model's ``feature_mode``
(``models.inputs.NodeInput``); the contrastive alignment of the graph and text views is the
``training.objectives.TextAlignment`` objective.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from graphrec_lab.models.inputs import NodeInput
from graphrec_lab.models.text.cache import default_cache_dir, encode_cached

log = logging.getLogger(__name__)

MODES = ("frozen", "lora")


class ItemTextFeatures(nn.Module):
    """Args:
        encoder: a ``TextEncoder`` (frozen, or wrapped with LoRA adapters for ``mode="lora"``).
        mode: ``"frozen"`` or ``"lora"``.
        cache_dir: embedding cache of frozen mode (``cache.default_cache_dir()`` when None; ``"none"``
            disables it).
        max_live_texts: LoRA mode: most texts re-encoded with gradients per training step.
        lr: LoRA mode: learning rate of the adapters (the task's ``lr`` when None).
        center: centre and rescale the features (see the module docstring).
    """

    def __init__(
        self,
        encoder: nn.Module,
        mode: str = "frozen",
        cache_dir: str | None = None,
        max_live_texts: int = 256,
        lr: float | None = None,
        center: bool = False,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"text.mode={mode!r}: expected one of {MODES}")
        trainable = any(p.requires_grad for p in encoder.parameters())
        if mode == "lora" and not trainable:
            raise ValueError("text.mode='lora' needs an encoder with LoRA adapters (text.encoder.lora: {r: ..., ...})")
        if mode == "frozen" and trainable:
            raise ValueError("text.mode='frozen' got an encoder with trainable parameters (set text.encoder.lora: null)")
        if max_live_texts < 1:
            raise ValueError(f"text.max_live_texts={max_live_texts}: must be >= 1")
        self.encoder = encoder
        self.mode = mode
        self.cache_dir = cache_dir
        self.max_live_texts = max_live_texts
        self.lr = lr
        self.center = center
        self.register_buffer("feature_mean", None, persistent=False)
        self.register_buffer("feature_scale", None, persistent=False)
        self.texts: list[str] = []
        self.encoder_forward_texts = 0  # texts encoded with gradients (LoRA steps), for the logs

    @property
    def trainable(self) -> bool:
        return self.mode == "lora"

    def _cache_dir(self) -> Path | None:
        if isinstance(self.cache_dir, str) and self.cache_dir.lower() == "none":
            return None
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return default_cache_dir()

    def attach(self, texts: list[str]) -> Tensor:
        """Keep the item texts (one per dense item id) and return their features [I, H]."""
        self.texts = list(texts)
        if self.mode == "frozen":
            cache = self._cache_dir()
            if cache is None:
                raw = self.encoder.encode(self.texts).float()
            else:
                raw = encode_cached(self.encoder, self.texts, cache).float()
        else:
            raw = self._encode_all_raw()
        if self.center:
            self.feature_mean = raw.mean(0, keepdim=True)
            self.feature_scale = (raw - self.feature_mean).pow(2).sum(1).mean().sqrt().clamp(min=1e-12)
        return self._transform(raw)

    def _transform(self, x: Tensor) -> Tensor:
        if self.feature_mean is None:
            return x
        return (x - self.feature_mean.to(x.device)) / self.feature_scale.to(x.device)

    @torch.no_grad()
    def encode_all(self) -> Tensor:
        """Every item's features [I, H] with the current adapters, batched, without gradients."""
        return self._transform(self._encode_all_raw())

    @torch.no_grad()
    def _encode_all_raw(self) -> Tensor:
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            return self.encoder.encode(self.texts).float()
        finally:
            self.encoder.train(was_training)

    def refresh(self, node_input: NodeInput) -> None:
        """LoRA mode: re-encode the bank (the model's item-feature buffer) with the current adapters."""
        self.refresh_bank(node_input.item_features)

    def refresh_bank(self, bank: Tensor | None) -> None:
        """LoRA mode: overwrite ``bank`` [I, H] (a model's item-feature buffer, or a view of it) with
        every item's encoding under the current adapters; frozen mode: nothing to do."""
        if self.mode != "lora":
            return
        assert bank is not None
        bank.copy_(self.encode_all().to(bank.device))

    def live_features(self, node_input: NodeInput, items: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """LoRA mode: the bank with the rows of ``items`` (the batch's item ids, any shape) re-encoded
        with gradients: [I, H]. At most ``max_live_texts`` distinct items are re-encoded."""
        assert node_input.item_features is not None
        return self.live_bank(node_input.item_features, items, generator)

    def live_bank(self, bank: Tensor, items: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``bank`` [I, H] with the rows of ``items`` (0-based item ids, any shape) re-encoded with
        gradients, as a new tensor [I, H]; at most ``max_live_texts`` distinct items, drawn uniformly."""
        ids = torch.unique(items)
        if ids.numel() > self.max_live_texts:
            pick = torch.randperm(ids.numel(), generator=generator, device="cpu")[: self.max_live_texts]
            ids = ids[pick.to(ids.device)]
        fresh = self._transform(self.encoder.encode([self.texts[i] for i in ids.tolist()]).to(bank.dtype))
        self.encoder_forward_texts += ids.numel()
        return bank.detach().index_copy(0, ids.to(bank.device), fresh)
