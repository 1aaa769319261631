"""Each sequential model gives ``[B, num_items]`` scores and one CE step lowers its loss on a toy set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graphrec_lab.data.sequential import pad_sequences
from graphrec_lab.models.sequential import GRU4Rec, SASRec, SRGNN, TextSASRec


def _toy() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, 20, (int(torch.randint(1, 8, (1,), generator=gen)),), generator=gen).tolist()
            for _ in range(32)]
    targets = torch.tensor([(s[-1] + 1) % 20 for s in seqs])  # learnable: next item = last + 1
    return pad_sequences(seqs, max_length=8), targets


@pytest.mark.parametrize("make", [
    lambda: GRU4Rec(20, dim=16, dropout=0.0),
    lambda: SASRec(20, dim=16, max_length=8, num_layers=1, dropout=0.0),
    lambda: SRGNN(20, dim=16),
    lambda: TextSASRec(torch.randn(20, 12), dim=16, max_length=8, num_layers=1, dropout=0.0),
    lambda: TextSASRec(torch.randn(20, 12), dim=16, max_length=8, num_layers=1, dropout=0.0, use_ids=True),
])
def test_forward_shapes_and_one_step_lowers_the_loss(make) -> None:
    torch.manual_seed(0)
    model = make()
    items, targets = _toy()
    assert model(items).shape == (32, 16)
    scores = model.full_scores(items)
    assert scores.shape == (32, 20) and torch.isfinite(scores).all()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = F.cross_entropy(model.full_scores(items), targets)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = F.cross_entropy(model.full_scores(items), targets)
    assert after < before


def test_gated_text_fusion_starts_half_open_and_learns_its_gate():
    """feature_mode=gated: ID + sigmoid(W [id; text]) * text; the gate starts at 0.5 (zero weights)
    and receives gradients; padding stays zero."""
    import torch

    from graphrec_lab.models.sequential import SASRec

    torch.manual_seed(0)
    feats = torch.randn(6, 5)
    model = SASRec(6, dim=4, max_length=3, item_features=feats, feature_mode="gated", adaptor_dropout=0.0)
    model.eval()
    with torch.no_grad():
        text = model.adaptor(model.text_features)
        text[0] = 0
        expected = model.item_embedding.weight + 0.5 * text
        assert torch.allclose(model.item_table(), expected, atol=1e-6)
        assert model.item_table()[0].abs().sum() == 0
    model.full_scores(torch.tensor([[0, 1, 2]])).sum().backward()
    assert model.gate.weight.grad is not None and model.gate.weight.grad.abs().sum() > 0
