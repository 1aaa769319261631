"""Decoder text encoders: last-token / EOS pooling under left and right padding, LoRA presets by
architecture, quantisation errors, out-of-memory halving and a frozen-text run with a tiny GPT-2.

Every model is a tiny randomly initialised config (GPT-2, Llama, BERT) saved offline with a WordLevel
tokenizer built from ``tokenizers``: nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from graphrec_lab.models.text import TextEncoder, TextEncoderError
from graphrec_lab.models.text.encoder import last_token_index
from graphrec_lab.models.text.resolve import lora_target_modules

WORDS = "graph neural network light convolution user item text model a the of for with short long".split()
TEXTS = ["graph neural network for user item", "a", "light convolution", "the long text model of a user with a graph", "short"]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "<s>", "</s>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>")


def _model(arch: str):
    torch.manual_seed(0)
    n = len(WORDS) + 4
    if arch == "gpt2":
        from transformers import GPT2Config, GPT2Model

        return GPT2Model(GPT2Config(vocab_size=n, n_positions=64, n_embd=32, n_layer=2, n_head=2, eos_token_id=3, bos_token_id=2))
    if arch == "llama":
        from transformers import LlamaConfig, LlamaModel

        return LlamaModel(LlamaConfig(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=1, max_position_embeddings=64, pad_token_id=0, eos_token_id=3, bos_token_id=2))
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                max_position_embeddings=64))


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-gpt2")
    _model("gpt2").save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


def test_last_token_index_under_both_paddings() -> None:
    right = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]])
    assert last_token_index(right).tolist() == [2, 0, 3]
    assert last_token_index(left).tolist() == [3, 3, 3]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("pooling", ["last", "eos"])
def test_last_token_pooling_equals_the_unpadded_text(arch: str, padding_side: str, pooling: str) -> None:
    enc = TextEncoder.from_model(_model(arch), _tokenizer(), pooling=pooling, padding_side=padding_side, max_length=16)
    assert enc.padding_side == padding_side
    batched = enc.encode(TEXTS, batch_size=len(TEXTS))  # padded to the longest text
    alone = torch.cat([enc.encode([t]) for t in TEXTS])  # no padding at all
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    # The pooled state is the last real token's: the final position of an unpadded forward pass.
    ids = enc.tokenize(TEXTS[:1])[0]
    if pooling == "eos":
        assert ids[-1] == 3
    with torch.no_grad():
        hidden = enc.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    torch.testing.assert_close(batched[0], hidden[-1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(hidden[-1], hidden[0])  # the first token would be a different vector


def test_padding_side_auto_is_left_for_decoder_pooling() -> None:
    assert TextEncoder.from_model(_model("gpt2"), _tokenizer(), max_length=16, pooling="last").padding_side == "left"
    assert TextEncoder.from_model(_model("bert"), _tokenizer(), max_length=16, pooling="mean").padding_side == "right"
    with pytest.raises(TextEncoderError, match="padding_side"):
        TextEncoder.from_model(_model("gpt2"), _tokenizer(), max_length=16, pooling="last", padding_side="middle")


@pytest.mark.parametrize(("arch", "expected"), [("gpt2", ["c_attn"]), ("llama", ["q_proj", "v_proj"]), ("bert", ["query", "value"])])
def test_lora_auto_preset_attaches_to_the_expected_modules(arch: str, expected: list[str]) -> None:
    model = _model(arch)
    assert lora_target_modules(model) == expected
    enc = TextEncoder.from_model(model, _tokenizer(), max_length=16, pooling="last", lora={"target_modules": "auto", "r": 2})
    assert enc.lora["target_modules"] == expected
    adapted = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in enc.model.named_parameters() if ".lora_A" in name}
    assert adapted == set(expected)
    trainable = [name for name, p in enc.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    enc.encode(TEXTS).sum().backward()  # the adapters receive gradients
    assert all(p.grad is not None for name, p in enc.model.named_parameters() if p.requires_grad)


def test_lora_auto_without_a_preset_names_the_key() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(TextEncoderError, match="text.encoder.lora.target_modules=auto"):
        lora_target_modules(model)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is absent")
@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantization_without_cuda_names_the_key(gpt2_dir: Path, quantization: str) -> None:
    with pytest.raises(TextEncoderError, match=f"text.encoder.quantization={quantization}"):
        TextEncoder(str(gpt2_dir), pooling="last", quantization=quantization)
    with pytest.raises(TextEncoderError, match="text.encoder.quantization='2bit'"):
        TextEncoder(str(gpt2_dir), pooling="last", quantization="2bit")


def test_out_of_memory_halves_the_batch(monkeypatch) -> None:
    enc = TextEncoder.from_model(_model("gpt2"), _tokenizer(), max_length=16, pooling="last", batch_size=4)
    expected = enc.encode(TEXTS)
    sizes: list[int] = []
    embed = TextEncoder._embed

    def small_memory(self, input_ids, attention_mask):
        sizes.append(input_ids.size(0))
        if input_ids.size(0) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return embed(self, input_ids, attention_mask)

    monkeypatch.setattr(TextEncoder, "_embed", small_memory)
    got = enc.encode(TEXTS)
    assert sizes[:3] == [4, 2, 1] and set(sizes[3:]) == {1}
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_loads_a_saved_decoder_and_keys_its_padding(gpt2_dir: Path) -> None:
    enc = TextEncoder(str(gpt2_dir), pooling="last", dtype="bfloat16", max_length=16)
    assert next(enc.model.parameters()).dtype == torch.bfloat16
    out = enc.encode(TEXTS)
    assert out.shape == (len(TEXTS), 32) and out.dtype == torch.float32 and torch.isfinite(out).all()
    right = TextEncoder(str(gpt2_dir), pooling="last", padding_side="right", max_length=16)
    assert enc.settings()["padding_side"] == "left" and "padding_side" not in right.settings()


def test_frozen_text_run_with_a_tiny_gpt2(gpt2_dir: Path, tmp_path: Path) -> None:
    from graphrec_lab.config import compose
    from graphrec_lab.experiment import run_experiment
    from graphrec_lab.tracking.results import ResultStore
    from tests.conftest import tiny_overrides

    overrides = tiny_overrides(
        tmp_path / "out", "text=frozen", "encoder@text.encoder=decoder_frozen", f"text.encoder.model_name_or_path={gpt2_dir}",
        "text.encoder.max_length=32", "text.cache_dir=none", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1",
    )
    metrics = run_experiment(compose(overrides), overrides)
    assert 0.0 < metrics["test/ndcg@20"] <= 1.0  # every item got a GPT-2 vector and the model ranked them
    record = ResultStore(tmp_path / "out" / "results.jsonl").read()[-1]
    encoder = record["config"]["text"]["encoder"]
    assert encoder["model_name_or_path"] == str(gpt2_dir) and encoder["pooling"] == "last" and encoder["dtype"] == "bfloat16"


def test_decoder_preset_matches_the_signature() -> None:
    import inspect

    from omegaconf import OmegaConf

    from graphrec_lab.config import config_dir

    cfg = OmegaConf.load(config_dir() / "encoder" / "decoder_frozen.yaml")
    assert cfg._target_ == "graphrec_lab.models.text.TextEncoder"
    assert set(cfg) - {"_target_"} <= set(inspect.signature(TextEncoder.__init__).parameters)
    assert cfg.pooling == "last" and cfg.padding_side == "auto"
