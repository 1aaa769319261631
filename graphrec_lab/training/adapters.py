"""LoRA text encoders inside a task: adapter-only checkpoints and the adapters' optimiser group.

Shared by ``RecommendationTask`` and ``NewsTask``: both hold the trainable text encoder as
``self.text`` (``models.text.fusion.ItemTextFeatures`` or None).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


class TextAdapterCheckpoints(pl.LightningModule):
    """Checkpoints keep the LoRA adapters, not the frozen encoder weights (~90 MB for MiniLM); on
    loading, the frozen weights (the same model's) are put back so loading stays strict: a missing
    adapter or graph weight is still an error."""

    text: Any  # ItemTextFeatures | None, set by the task

    def _frozen_text_keys(self) -> set[str]:
        if self.text is None:
            return set()
        trainable = {f"text.{n}" for n, p in self.text.named_parameters() if p.requires_grad}
        return {k for k in self.state_dict() if k.startswith("text.") and k not in trainable}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for key in self._frozen_text_keys():
            checkpoint["state_dict"].pop(key, None)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        frozen = self._frozen_text_keys()
        if frozen:
            current = self.state_dict()
            for key in frozen:
                checkpoint["state_dict"].setdefault(key, current[key])

    def adapter_param_group(self, default_lr: float) -> list[dict[str, Any]]:
        """The adapters' Adam group (own learning rate ``text.lr``, no weight decay), or none."""
        if self.text is None:
            return []
        adapters = [p for p in self.text.parameters() if p.requires_grad]
        return [{"params": adapters, "lr": self.text.lr or default_lr, "weight_decay": 0.0}]
