"""run_experiment with item text: frozen (cached, zero encoder passes on a rerun), LoRA (adapters train,
checkpoints hold adapters only, the selected checkpoint restores them) and the cold-start groups.
The real bundled MiniLM encodes the tiny synthetic graph's 150 short titles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from graphrec_lab.config import ConfigError, compose
from graphrec_lab.experiment import run_experiment
from graphrec_lab.tracking.results import ResultStore
from tests.conftest import tiny_overrides


def _count_encoder_forwards(monkeypatch) -> list[int]:
    from graphrec_lab.models.text.encoder import TextEncoder

    calls = [0]
    original = TextEncoder.encode

    def counting(self, texts, *args, **kwargs):
        out = original(self, texts, *args, **kwargs)
        calls[0] += len(texts)
        return out

    monkeypatch.setattr(TextEncoder, "encode", counting)
    return calls


@pytest.mark.slow
def test_frozen_text_run_uses_the_cache_on_rerun_and_reports_cold_items(out_dir, tmp_path, monkeypatch):
    calls = _count_encoder_forwards(monkeypatch)
    overrides = tiny_overrides(
        out_dir, "text=frozen", f"text.cache_dir={tmp_path / 'text'}", "data.cold_item_fraction=0.2",
        "data.isolated_self_loops=true",
    )
    first = run_experiment(compose(overrides), overrides)
    assert calls[0] == 150, "every item text encoded once"
    second = run_experiment(compose(overrides), overrides)
    assert calls[0] == 150, "the rerun is served from the cache: zero encoder passes"
    assert first["test/ndcg@20"] == second["test/ndcg@20"]
    for group in ("cold", "warm"):
        assert 0.0 <= first[f"test/{group}/recall@20"] <= 1.0
        assert first[f"test/{group}/num_users"] > 0
    # Text reaches cold items, which have no training edge: they must not all score at the bottom.
    assert first["test/cold/recall@20"] > 0.0


@pytest.mark.slow
def test_lora_run_trains_adapters_and_checkpoints_only_them(out_dir):
    overrides = tiny_overrides(out_dir, "text=lora", "text.max_live_texts=32", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1")
    metrics = run_experiment(compose(overrides), overrides)
    assert metrics["test/ndcg@20"] > 0.0
    record = ResultStore(out_dir / "results.jsonl").read()[-1]
    state = torch.load(record["paths"]["checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    adapters = [k for k in state if "lora_" in k]
    assert adapters, "the adapters are in the checkpoint"
    assert not any(k.startswith("text.") and "lora_" not in k for k in state), "frozen encoder weights are not"
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert any(v.abs().sum() > 0 for v in lora_b), "LoRA B starts at zero: a trained adapter is non-zero"


def test_text_needs_a_data_module_with_text(out_dir):
    from graphrec_lab.data.datamodule import InteractionDataModule
    from graphrec_lab.experiment import _item_texts

    cfg = compose(tiny_overrides(out_dir, "text=frozen"))
    with pytest.raises(ConfigError, match="has no item text"):
        _item_texts(cfg, InteractionDataModule(dataset="synthetic"))


def test_text_with_a_model_without_inputs_is_a_config_error(out_dir):
    overrides = tiny_overrides(out_dir, "text=frozen", "model=pop")
    with pytest.raises(ConfigError):
        run_experiment(compose(overrides), overrides)
