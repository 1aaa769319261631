"""Encode item texts with a real small decoder (Qwen / Llama style) from a local folder and report
throughput and memory.

    python benchmarks/gpu_check/decoder_encoder.py /models/Qwen2.5-0.5B            # GPU, bf16 weights
    python benchmarks/gpu_check/decoder_encoder.py /models/Qwen2.5-0.5B --quantization 4bit
    python benchmarks/gpu_check/decoder_encoder.py /tmp/tiny-gpt2 --device cpu --dtype float32 --texts 200   # smoke test

Nothing is downloaded: the model folder (``config.json``, weights, tokenizer) must exist locally.
Texts come from ``--texts-file`` (one per line) or are generated deterministically (product-title
like strings of 5-40 words). The encoder pools the last real token of left-padded batches
(``pooling=last``) and halves its batch on out-of-memory; the report gives the batch size it ended at.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

WORDS = ("wireless bluetooth headphones noise cancelling over ear lab grade pipette tips sterile "
         "microscope slides glass pack of stainless steel beaker graduated cylinder digital scale "
         "precision thermometer lab coat nitrile gloves safety goggles centrifuge tube rack").split()


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic title-like texts of 5-40 words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_path", type=Path, help="local model folder (no download at run time)")
    parser.add_argument("--texts", type=int, default=5000, help="number of generated texts")
    parser.add_argument("--texts-file", type=Path, help="encode these texts instead (one per line)")
    parser.add_argument("--pooling", default="last", choices=["last", "eos", "mean"])
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--quantization", choices=["8bit", "4bit"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args()

    if not args.model_path.is_dir() or not (args.model_path / "config.json").is_file():
        raise SystemExit(f"model folder {args.model_path} does not exist or has no config.json: pass a local "
                         f"transformers model folder (this script never downloads)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    from graphrec_lab.models.text import TextEncoder

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible; run with --device cpu --dtype float32 for a smoke test")
    if args.texts_file is not None:
        texts = [line.strip() for line in args.texts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        texts = synthetic_texts(args.texts)

    start = time.perf_counter()
    encoder = TextEncoder(
        str(args.model_path), pooling=args.pooling, max_length=args.max_length, batch_size=args.batch_size,
        dtype=args.dtype, quantization=args.quantization, device=None if args.quantization else args.device,
    )
    load_s = time.perf_counter() - start
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    encoder.encode(texts[: min(len(texts), args.batch_size)])  # warm-up (kernels, allocator)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    vectors = encoder.encode(texts)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    report = {
        "model": str(args.model_path), "model_class": type(encoder.model).__name__, "texts": len(texts),
        "dim": encoder.dim, "pooling": encoder.pooling, "padding_side": encoder.padding_side, "dtype": args.dtype,
        "quantization": args.quantization, "max_length": args.max_length, "batch_size": args.batch_size,
        "load_s": round(load_s, 2), "encode_s": round(seconds, 3), "texts_per_s": round(len(texts) / seconds, 1),
        "finite": bool(torch.isfinite(vectors).all()),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not report["finite"]:
        sys.exit("non-finite vectors")


if __name__ == "__main__":
    main()
