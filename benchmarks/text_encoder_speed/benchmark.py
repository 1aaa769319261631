"""Speed of the frozen TextEncoder vs sentence-transformers, and of the disk cache.

One process, the real all-MiniLM-L6-v2 (bundled), the same texts (item texts of amazon-scientific),
batch size, max length and thread count for both. Each encoder is warmed up, then timed
``--repeats`` times, alternating, and the best time is kept (use 2+ on a shared machine).
Then ``encode_cached`` runs twice on an empty temporary cache: the first call encodes and writes, the
second must hit the cache with zero transformer forward passes.

    .venv/bin/python benchmarks/text_encoder_speed/benchmark.py --num-texts 2000 --batch-size 64 --threads 2 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def load_texts(path: Path, n: int) -> list[str]:
    """The second column of a RecBole ``.text`` file (header skipped), first ``n`` rows."""
    texts: list[str] = []
    with path.open(encoding="utf-8") as f:
        next(f)  # item_id:token \t text:token_seq
        for lineno, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'item_id<TAB>text'")
            texts.append(parts[1])
            if len(texts) == n:
                break
    return texts


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    data_dir = Path(os.environ.get("GRAPHREC_DATA_DIR", REPO.parent / "shared" / "datasets"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text-file", type=Path, default=data_dir / "amazon-scientific" / "Scientific.text")
    parser.add_argument("--num-texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per encoder, alternating (best kept)")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    from graphrec_lab.models.text import TextEncoder, bundled_minilm_path, encode_cached

    texts = load_texts(args.text_file, args.num_texts)
    path = str(bundled_minilm_path())
    # normalize=True: the bundled ST pipeline ends with a Normalize module, so both do the same work
    ours = TextEncoder(path, max_length=args.max_length, batch_size=args.batch_size, normalize=True).eval()
    st = SentenceTransformer(path, device="cpu")
    st.max_seq_length = args.max_length
    lengths = [len(ids) for ids in ours.tokenize(texts)]
    print(f"texts: {len(texts)} from {args.text_file.name}; tokens/text mean {sum(lengths) / len(lengths):.1f}, "
          f"max {max(lengths)}; batch {args.batch_size}; max_length {args.max_length}; torch threads {torch.get_num_threads()}")

    # Work each side does: tokens after padding each batch to its longest text. We sort by token
    # count; sentence-transformers sorts by character count (its _input_length of a str).
    def padded_tokens(order: list[int]) -> int:
        bs = args.batch_size
        return sum(len(order[i : i + bs]) * max(lengths[j] for j in order[i : i + bs]) for i in range(0, len(order), bs))

    pad_ours = padded_tokens(sorted(range(len(texts)), key=lambda i: -lengths[i]))
    pad_st = padded_tokens(sorted(range(len(texts)), key=lambda i: -len(texts[i])))
    print(f"tokens after padding: ours {pad_ours}, sentence-transformers {pad_st} ({pad_st / pad_ours:.2f}x); "
          f"unpadded {sum(lengths)}")

    def run_ours():
        return ours.encode(texts, batch_size=args.batch_size)

    def run_st():
        return st.encode(texts, batch_size=args.batch_size, convert_to_tensor=True)

    warm = texts[: 2 * args.batch_size]
    ours.encode(warm)
    st.encode(warm, batch_size=args.batch_size)
    t_ours, t_st = float("inf"), float("inf")
    for _ in range(args.repeats):  # alternate, so background load hits both alike; keep the best
        t, out_ours = timed(run_ours)
        t_ours = min(t_ours, t)
        t, out_st = timed(run_st)
        t_st = min(t_st, t)
    diff = (out_ours - out_st.cpu()).abs().max().item()
    print(f"max |ours - sentence-transformers| = {diff:.2e}")
    print(f"TextEncoder.encode          {len(texts) / t_ours:8.1f} texts/s  ({t_ours:.2f} s, best of {args.repeats})")
    print(f"SentenceTransformer.encode  {len(texts) / t_st:8.1f} texts/s  ({t_st:.2f} s, best of {args.repeats})")
    print(f"ratio ours/ST               {t_st / t_ours:8.2f}  (target >= 1.0)")

    calls = [0]
    ours.model.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    cache_dir = tempfile.mkdtemp(prefix="text-encoder-bench-")
    try:
        t0 = time.perf_counter()
        first = encode_cached(ours, texts, cache_dir)
        t_cold = time.perf_counter() - t0
        cold_calls = calls[0]
        t0 = time.perf_counter()
        second = encode_cached(ours, texts, cache_dir)
        t_hot = time.perf_counter() - t0
        hot_calls = calls[0] - cold_calls
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    assert torch.equal(first, second)
    print(f"encode_cached, empty cache  {len(texts) / t_cold:8.1f} texts/s  ({t_cold:.2f} s, {cold_calls} forward passes)")
    print(f"encode_cached, cache hit    {len(texts) / t_hot:8.1f} texts/s  ({t_hot:.3f} s, {hot_calls} forward passes)")
    print(f"speed-up of the cache hit   {t_cold / t_hot:8.1f}x")


if __name__ == "__main__":
    main()
