"""The training loss of an epoch, averaged over its samples, logged once as ``train/loss``.

Per-step logging would average per batch (a short last batch would weigh as much as a full one) and
synchronise every step; the sums here are added on the device and reduced across DDP ranks once.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor


class EpochMeanLoss(pl.LightningModule):
    """Mixin: call ``add_train_loss(loss, n)`` in ``training_step``; the epoch's mean is logged at its end."""

    def on_train_epoch_start(self) -> None:
        self._train_sums = torch.zeros(2, dtype=torch.float64, device=self.device)

    def add_train_loss(self, loss: Tensor, n: int) -> None:
        """Add a batch's mean ``loss`` over its ``n`` samples."""
        self._train_sums += torch.stack([loss.detach().double() * n, loss.new_tensor(float(n), dtype=torch.float64)])

    def on_train_epoch_end(self) -> None:
        sums = self._train_sums
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self.log("train/loss", float(sums[0] / sums[1].clamp(min=1)), sync_dist=False)
