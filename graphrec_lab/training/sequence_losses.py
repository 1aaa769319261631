"""UniSRec's contrastive pre-training tasks (Hou et al., KDD 2022, Sec. 3.2), for ``task.loss=unisrec``.

Both contrast a batch of L2-normalised sequence states against in-batch candidates at temperature
``tau``; on a multi-domain dataset (``data=sequential_multi``) a batch mixes domains, so the
negatives are the paper's multi-domain negatives:

* **sequence-item**: a sequence's state against the adapted representations of every target in the
  batch; its own target is the positive;
* **sequence-sequence**: a sequence's state against the states of the augmented sequences of the
  batch; its own augmentation is the positive. The augmentation is item drop (each history item
  dropped with probability ``ratio``, at least one kept).

Both are ``training.objectives.contrastive.info_nce`` with the batch's targets as groups. Rows
whose target equals this row's target are not negatives: the released code sets their logits
to 0 (so each still adds exp(0) = 1 to the denominator); here they are removed from the softmax.
The released code also augments by word drop (a second text encoding with words dropped) in 10% of
the batches; that needs a second encoding of every item and is not implemented here.
"""

from __future__ import annotations

import torch
from torch import Tensor


def item_drop(history: Tensor, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """``history`` [B, L] right-aligned 1-based items (0 pads) with each item dropped with
    probability ``ratio`` and the rest right-aligned again in order; every row keeps its last item
    when all would be dropped. Returns [B, L]."""
    real = history > 0
    keep = (torch.rand(history.shape, generator=generator, device="cpu").to(history.device) >= ratio) & real
    none = ~keep.any(1)
    keep[none, -1] = real[none, -1]  # rows that lost every item keep their latest one
    order = torch.sort(keep.to(torch.int8), dim=1, stable=True).indices  # dropped first, kept last (order kept)
    packed = history.gather(1, order)
    return packed * keep.gather(1, order)

