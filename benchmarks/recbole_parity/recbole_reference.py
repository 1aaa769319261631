"""RecBole 1.2.1's own numbers on MovieLens-100K, for the parity table (run with RecBole's Python).

RecBole's default protocol (all ratings as implicit feedback, per-user random 8:1:1 split, full
ranking, validation every 5 epochs, early stopping after 10 checks on NDCG@20) at the LightGCN
paper's settings (d=64, 3 layers, Adam 1e-3, batch 2048, L2 weight 1e-4), on the same ``u.data``
as ``graphrec-lab study recbole_parity``. One JSON line per seed is appended to ``--out`` (default
``outputs/recbole_reference.jsonl``).

RecBole 1.2.1 needs numpy < 2, so it runs from its own environment (torch first and pinned again with
RecBole: a "setuptools<70" in the same install makes pip fall back to an older CUDA torch; checked
2026-12-04):

    python3.11 -m venv /tmp/rbvenv
    /tmp/rbvenv/bin/pip install torch==2.13.0
    /tmp/rbvenv/bin/pip install recbole==1.2.1 "numpy<2" "scipy<1.12" "pandas<2.3" torch==2.13.0
    /tmp/rbvenv/bin/pip install --no-deps "setuptools<70"
    /tmp/rbvenv/bin/python benchmarks/recbole_parity/recbole_reference.py --data-dir $GRAPHREC_DATA_DIR \
        --model LightGCN --epochs 400 --seeds 2020 2021 2022
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_atomic_inter(data_dir: Path, out_dir: Path) -> Path:
    """GroupLens ``u.data`` -> RecBole's ``ml-100k.inter`` (atomic format) under ``out_dir/ml-100k``."""
    src = data_dir / "ml-100k" / "u.data"
    if not src.exists():
        raise FileNotFoundError(f"{src} not found: pass --data-dir, the folder that holds ml-100k/")
    target = out_dir / "ml-100k"
    target.mkdir(parents=True, exist_ok=True)
    with src.open() as f, (target / "ml-100k.inter").open("w") as o:
        o.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for line in f:
            o.write("\t".join(line.split()) + "\n")
    return out_dir


def recbole_config(data_path: str | Path, seed: int, epochs: int) -> dict:
    """RecBole's config for the parity protocol (its defaults: RS 8:1:1 split, full ranking) at the
    LightGCN paper's settings; shared by this script and ``speed_vs_recbole.py``."""
    return {
        "data_path": str(data_path), "epochs": epochs, "eval_step": 5, "stopping_step": 10,
        "train_batch_size": 2048, "learning_rate": 1e-3, "reg_weight": 1e-4, "embedding_size": 64,
        "n_layers": 3, "seed": seed, "device": "cpu", "use_gpu": False,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "topk": [20], "metrics": ["Recall", "NDCG"], "valid_metric": "NDCG@20",
        "show_progress": False, "checkpoint_dir": str(Path(data_path) / "saved"), "log_wandb": False,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model", default="LightGCN", help="RecBole model name: LightGCN or BPR")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--out", type=Path, default=HERE / "outputs" / "recbole_reference.jsonl")
    args = parser.parse_args()

    # RecBole 1.2.1 reloads its best checkpoint with a bare torch.load, which torch >= 2.6 refuses
    # (weights_only by default) for the pickled config inside; this restores the old default.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import recbole
    from recbole.quick_start import run_recbole

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_path = write_atomic_inter(args.data_dir, Path(tmp))
        for seed in args.seeds:
            config = recbole_config(data_path, seed, args.epochs)
            t0 = time.perf_counter()
            result = run_recbole(model=args.model, dataset="ml-100k", config_dict=config, saved=True)
            logging.shutdown()
            record = {
                "model": args.model, "seed": seed, "epochs": args.epochs, "recbole": recbole.__version__,
                "test": {k: float(v) for k, v in result["test_result"].items()},
                "best_valid": {k: float(v) for k, v in result["best_valid_result"].items()},
                "wall_s": time.perf_counter() - t0,
            }
            with args.out.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
