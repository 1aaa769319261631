"""Explicit-rating metrics: RMSE and MAE of predicted against observed ratings, and model selection on
validation RMSE (lower is better, so the best epoch is the minimum, unlike the ranking metrics)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _check(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and ratings {tuple(target.shape)} differ in shape")
    if pred.numel() == 0:
        raise ValueError("no ratings to evaluate")
    return pred.double(), target.double()


def rmse(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Root mean squared error of ``pred`` [N] against ``target`` [N]."""
    p, t = _check(pred, target)
    return float(torch.sqrt(torch.mean((p - t) ** 2)))


def mae(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error of ``pred`` [N] against ``target`` [N]."""
    p, t = _check(pred, target)
    return float(torch.mean(torch.abs(p - t)))


def rating_metrics(pred: torch.Tensor, target: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """``{prefix}rmse`` and ``{prefix}mae`` of one prediction set."""
    return {f"{prefix}rmse": rmse(pred, target), f"{prefix}mae": mae(pred, target)}


def best_epoch(val_rmse: Sequence[float]) -> int:
    """Index of the epoch with the lowest validation RMSE (the first one on a tie)."""
    if not val_rmse:
        raise ValueError("no validation RMSE recorded")
    return min(range(len(val_rmse)), key=lambda k: (val_rmse[k], k))


class RatingEvaluator(torch.nn.Module):
    """Accumulates RMSE and MAE over batches (torchmetrics states: summed across DDP ranks).

    ``update(pred [B], target [B])``; ``compute() -> {"rmse": .., "mae": ..}``; ``metric_names`` lists them."""

    metric_names = ("rmse", "mae")

    def __init__(self) -> None:
        super().__init__()
        from torchmetrics import MeanAbsoluteError, MeanSquaredError

        # float64 states: float32 sums round differently for different batch sizes
        self.mse = MeanSquaredError().set_dtype(torch.float64)
        self.mae = MeanAbsoluteError().set_dtype(torch.float64)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        p, t = _check(pred, target)
        self.mse.update(p, t)
        self.mae.update(p, t)

    def compute(self) -> dict[str, float]:
        return {"rmse": float(torch.sqrt(self.mse.compute())), "mae": float(self.mae.compute())}

    def reset(self) -> None:
        self.mse.reset()
        self.mae.reset()
