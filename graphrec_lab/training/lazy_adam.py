"""Adam on the rows of an embedding table that a step touched (TensorFlow's ``LazyAdam``).

With neighbour-sampled training a step reads a few hundred thousand rows of a table that may hold
millions. A plain ``torch.optim.Adam`` needs a dense [N, d] gradient and updates all N rows every
step, so the step's memory and time grow with the graph. Here the step's rows are gathered into a
leaf tensor, their gradient [n, d] comes back from the backward pass, and only those rows of the
weight and of Adam's moments change: per-step memory is O(n d). Untouched rows keep their moments
(no decay), which is the lazy part; with every row touched every step it is exactly Adam.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LazyRowAdam(nn.Module):
    """Row-sparse Adam for one [N, d] weight. Moments and the step count are buffers (checkpointed).

    Args:
        weight: the table (not registered here: it stays a parameter of its own module).
        lr, betas, eps, weight_decay: as ``torch.optim.Adam`` (L2 added to the gradient).
    """

    def __init__(
        self, weight: nn.Parameter, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
    ) -> None:
        super().__init__()
        self._weight = [weight]  # a list, so the module does not register (and re-save) the table
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.register_buffer("exp_avg", torch.zeros_like(weight, requires_grad=False))
        self.register_buffer("exp_avg_sq", torch.zeros_like(weight, requires_grad=False))
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))

    @property
    def weight(self) -> nn.Parameter:
        return self._weight[0]

    def gather(self, ids: Tensor) -> Tensor:
        """The rows ``ids`` [n] (distinct) as a leaf [n, d] whose ``.grad`` ``step`` consumes."""
        return self.weight.detach().index_select(0, ids).requires_grad_()

    @torch.no_grad()
    def step(self, ids: Tensor, grad: Tensor) -> None:
        """One Adam step on rows ``ids`` [n] (distinct) with their gradient [n, d]."""
        beta1, beta2 = self.betas
        self.step_count += 1
        t = int(self.step_count)
        weight = self.weight.data
        if self.weight_decay:
            grad = grad + self.weight_decay * weight.index_select(0, ids)
        m = self.exp_avg.index_select(0, ids).mul_(beta1).add_(grad, alpha=1 - beta1)
        v = self.exp_avg_sq.index_select(0, ids).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        self.exp_avg.index_copy_(0, ids, m)
        self.exp_avg_sq.index_copy_(0, ids, v)
        # torch.optim.Adam's arithmetic: w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        denom = v.sqrt().div_((1 - beta2**t) ** 0.5).add_(self.eps)
        weight.index_add_(0, ids, m.div_(denom).mul_(-self.lr / (1 - beta1**t)))
