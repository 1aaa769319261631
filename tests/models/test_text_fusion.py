"""Text features fused into graph models: feature modes, the LoRA bank with live rows, the alignment
objective and adapter-only checkpoints. A tiny stand-in encoder keeps these tests fast; the real
encoder is tested in test_text_encoder.py."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor, nn

from graphrec_lab.data.sampling import TrainBatch
from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.models import LightGCN
from graphrec_lab.models.inputs import NodeInput
from graphrec_lab.models.text.fusion import ItemTextFeatures
from graphrec_lab.training.objectives import TextAlignment
from graphrec_lab.training.task import RecommendationTask

U, I, H = 6, 8, 5


class CharEncoder(nn.Module):
    """Stand-in for TextEncoder: a frozen character-count featuriser [N, H], plus a trainable
    'adapter' matrix when ``adapter=True`` (like LoRA: only the adapter requires grad)."""

    def __init__(self, adapter: bool = False) -> None:
        super().__init__()
        self.base = nn.Linear(26, H)
        self.base.requires_grad_(False)
        self.adapter = nn.Parameter(torch.zeros(H, H)) if adapter else None
        self.calls = 0

    def encode(self, texts: list[str]) -> Tensor:
        self.calls += len(texts)
        counts = torch.zeros(len(texts), 26)
        for r, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    counts[r, ord(ch) - 97] += 1
        out = self.base(counts)
        return out + out @ self.adapter if self.adapter is not None else out


def _graph() -> TrainGraph:
    users = torch.tensor([0, 0, 1, 2, 3, 4, 5, 5])
    items = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    return TrainGraph.from_edges(users, items, U, I)


TEXTS = [f"item {w}" for w in ("apple", "banana", "cherry", "date", "elder", "fig", "grape", "honeydew")]


@pytest.mark.parametrize("mode", ["features", "sum", "gated"])
def test_feature_modes_use_the_text(mode: str) -> None:
    torch.manual_seed(0)
    feats = torch.randn(I, H)
    node_input = NodeInput(U, I, 4, item_features=feats, feature_mode=mode)
    base = node_input.items().detach().clone()
    node_input.set_live_features("item", feats * 2)
    changed = node_input.items().detach()
    node_input.set_live_features("item", None)
    assert not torch.allclose(base, changed), "the item rows must depend on the features"
    assert torch.allclose(node_input.items().detach(), base)
    assert (node_input.item_embedding is None) == (mode == "features")


def test_id_mode_keeps_features_for_objectives_only() -> None:
    feats = torch.randn(I, H)
    node_input = NodeInput(U, I, 4, item_features=feats, feature_mode="id")
    assert node_input.item_proj is None and node_input.features("item") is not None
    before = node_input.items().detach().clone()
    node_input.set_live_features("item", feats * 3)
    assert torch.equal(node_input.items().detach(), before)


def test_live_features_have_the_bank_shape() -> None:
    node_input = NodeInput(U, I, 4, item_features=torch.randn(I, H), feature_mode="sum")
    with pytest.raises(ValueError, match="shape"):
        node_input.set_live_features("item", torch.randn(I - 1, H))


def test_frozen_mode_rejects_trainable_encoder_and_lora_needs_one() -> None:
    with pytest.raises(ValueError, match="lora"):
        ItemTextFeatures(CharEncoder(adapter=True), mode="frozen")
    with pytest.raises(ValueError, match="LoRA"):
        ItemTextFeatures(CharEncoder(adapter=False), mode="lora")


def test_lora_live_rows_carry_gradients_only_for_the_batch() -> None:
    text = ItemTextFeatures(CharEncoder(adapter=True), mode="lora", max_live_texts=3)
    bank = text.attach(TEXTS)
    node_input = NodeInput(U, I, 4, item_features=bank, feature_mode="features")
    encoder: CharEncoder = text.encoder  # type: ignore[assignment]
    encoder.calls = 0
    live = text.live_features(node_input, torch.tensor([1, 1, 2, 5, 6]), generator=torch.Generator().manual_seed(0))
    assert encoder.calls == 3, "at most max_live_texts distinct items are re-encoded"
    live.sum().backward()
    assert encoder.adapter.grad is not None and encoder.adapter.grad.abs().sum() > 0
    # rows of other items are the bank's, unchanged and without gradients
    assert torch.allclose(live.detach(), bank, atol=1e-6)  # the adapter is still zero: fresh rows equal the bank
    with torch.no_grad():
        encoder.adapter.fill_(0.5)
    live = text.live_features(node_input, torch.tensor([2]))
    changed = (live.detach() - node_input.item_features).abs().amax(dim=1) > 1e-4
    assert changed.tolist() == [i == 2 for i in range(I)]
    text.refresh(node_input)
    assert torch.allclose(node_input.item_features, text.encode_all())


def _task(text: ItemTextFeatures | None, objectives: dict | None = None) -> RecommendationTask:
    bank = text.attach(TEXTS) if text is not None else None
    model = LightGCN(U, I, embedding_dim=4, num_layers=2, item_features=bank, feature_mode="sum")
    task = RecommendationTask(model, ks=(2,), metrics=("recall",), objectives=objectives, text=text)
    task.attach_graph(_graph())
    return task


def _batch() -> TrainBatch:
    return TrainBatch(users=torch.tensor([0, 1, 2]), pos_items=torch.tensor([0, 2, 3]), neg_items=torch.tensor([5, 6, 7]))


def test_training_step_updates_adapters_and_checkpoint_keeps_only_them(tmp_path) -> None:
    pl.seed_everything(0)
    text = ItemTextFeatures(CharEncoder(adapter=True), mode="lora", lr=0.01)
    task = _task(text, {"align": TextAlignment(weight=1.0)})
    task._train_sums = torch.zeros(4)
    opt = task.configure_optimizers()
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == [0.001, 0.01]
    n_adapters = sum(p.numel() for g in opt.param_groups for p in g["params"] if g["lr"] == 0.01)
    assert n_adapters == H * H, "only the adapter trains in the text group; frozen weights stay out"
    loss = task.training_step(_batch(), 0)
    loss.backward()
    encoder: CharEncoder = text.encoder  # type: ignore[assignment]
    assert encoder.adapter.grad is not None and encoder.adapter.grad.abs().sum() > 0
    assert task.objectives["align"].projection.weight.grad is not None
    assert task.model.input.features("item") is task.model.input.item_features, "live rows are cleared after the step"
    opt.step()

    ckpt = {"state_dict": task.state_dict()}
    task.on_save_checkpoint(ckpt)
    assert "text.encoder.adapter" in ckpt["state_dict"]
    assert not any(k.startswith("text.encoder.base") for k in ckpt["state_dict"])
    restored = _task(ItemTextFeatures(CharEncoder(adapter=True), mode="lora"), {"align": TextAlignment(weight=1.0)})
    restored.text.encoder.base.load_state_dict(encoder.base.state_dict())  # same pretrained weights
    restored.on_load_checkpoint(ckpt)
    restored.load_state_dict(ckpt["state_dict"], strict=True)
    assert torch.equal(restored.text.encoder.adapter, encoder.adapter)


def test_alignment_needs_text_features() -> None:
    model = LightGCN(U, I, embedding_dim=4, num_layers=2)
    with pytest.raises(ValueError, match="text"):
        RecommendationTask(model, objectives={"align": TextAlignment()}).attach_graph(_graph())


def test_frozen_text_is_a_buffer_not_a_task_module() -> None:
    text = ItemTextFeatures(CharEncoder(), mode="frozen", cache_dir="none")
    task = _task(text)
    assert task.text is None, "frozen features live in the model; the encoder does no work in training"
    assert not any(k.startswith("text.") for k in task.state_dict())
