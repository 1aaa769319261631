"""Training speed against RecBole 1.2.1, in one process pair run back to back: LightGCN (or BPR-MF) on MovieLens-100K.

Both sides train the same model at the same settings (d=64, 3 layers, Adam 1e-3, batch 2048, L2 1e-4)
on the same ``u.data`` with the same protocol (all ratings implicit, per-user random 8:1:1 split):

* **RecBole**: its own ``Trainer._train_epoch`` (what RecBole's log reports as "training [time: ...]"),
  run in a separate Python that has RecBole installed (``--recbole-python``; RecBole 1.2.1 needs
  numpy < 2, so it cannot share this environment, see below);
* **ours**: ``RecommendationTask`` through a Lightning ``Trainer.fit`` (the loop ``run_experiment``
  uses), timed by the same ``EpochTimer`` callback that writes ``time/epoch_s`` in result records.

The two alternate for ``--rounds`` rounds of ``--epochs`` epochs each, so both see the same machine
load; the first epoch of every round is warm-up and is dropped. The script prints the median seconds
per epoch of each side and the ratio RecBole / ours.

Setup of the RecBole interpreter (once; the same CPU torch; the recipe and why it is in three steps:
``recbole_reference.py``):

    python3.11 -m venv /tmp/rbvenv
    /tmp/rbvenv/bin/pip install torch==2.13.0
    /tmp/rbvenv/bin/pip install recbole==1.2.1 "numpy<2" "scipy<1.12" "pandas<2.3" torch==2.13.0
    /tmp/rbvenv/bin/pip install --no-deps "setuptools<70"

Then, from the repository root:

    python benchmarks/recbole_parity/speed_vs_recbole.py \
        --recbole-python /tmp/rbvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recbole_reference import write_atomic_inter  # noqa: E402  (the same u.data -> ml-100k.inter conversion)

RECBOLE_SCRIPT = r"""
import json, sys, time, logging
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed, get_model, get_trainer
data_path, model_name, epochs, seed, here = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sys.path.insert(0, here)
from recbole_reference import recbole_config
cfg = Config(model=model_name, dataset="ml-100k", config_dict=recbole_config(data_path, seed, epochs))
logging.disable(logging.CRITICAL)
init_seed(cfg["seed"], cfg["reproducibility"])
train, valid, test = data_preparation(cfg, create_dataset(cfg))
model = get_model(cfg["model"])(cfg, train.dataset)
trainer = get_trainer(cfg["MODEL_TYPE"], cfg["model"])(cfg, model)
times = []
for epoch in range(epochs):
    t0 = time.perf_counter()
    trainer._train_epoch(train, epoch, show_progress=False)
    times.append(time.perf_counter() - t0)
print("RESULT " + json.dumps({"epoch_s": times, "num_train": len(train.dataset)}))
"""


def recbole_epochs(python: str, data_path: Path, model: str, epochs: int, seed: int) -> dict:
    proc = subprocess.run(
        [python, "-c", RECBOLE_SCRIPT, str(data_path), model, str(epochs), str(seed), str(Path(__file__).resolve().parent)],
        capture_output=True, text=True, cwd=data_path,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"RecBole run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def our_epochs(model_name: str, epochs: int, seed: int, data_dir: Path) -> dict:
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from graphrec_lab.config import compose
    from graphrec_lab.training.callbacks import EpochTimer

    cfg = compose(["experiment=ml100k_recbole", f"model={model_name}", f"seed={seed}", f"data.data_dir={data_dir}"])
    pl.seed_everything(seed, verbose=False)
    dm = instantiate(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    model = instantiate(cfg.model, num_users=dm.num_users, num_items=dm.num_items, _convert_="all")
    task = instantiate(cfg.task, model=model, _recursive_=False, _convert_="all")
    task.attach_graph(dm.train_graph)
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )
    trainer.fit(task, datamodule=dm)
    return {"epoch_s": timer.epoch_seconds, "num_train": int(dm.graph.train.users.numel())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recbole-python", required=True, help="a Python with recbole==1.2.1 installed")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("GRAPHREC_DATA_DIR", "data")))
    parser.add_argument("--model", choices=["lightgcn", "bprmf"], default="lightgcn")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per round and side (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    recbole_model = {"lightgcn": "LightGCN", "bprmf": "BPR"}[args.model]
    times: dict[str, list[float]] = {"recbole": [], "ours": []}
    round_ratios: list[float] = []  # RecBole / ours within one round: both sides seconds apart
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_path = write_atomic_inter(args.data_dir, Path(tmp))
        for r in range(args.rounds):
            rb = recbole_epochs(args.recbole_python, data_path, recbole_model, args.epochs, args.seed)
            ours = our_epochs(args.model, args.epochs, args.seed, args.data_dir)
            times["recbole"] += rb["epoch_s"][1:]
            times["ours"] += ours["epoch_s"][1:]
            sizes = {"recbole_train_interactions": rb["num_train"], "our_train_interactions": ours["num_train"]}
            rb_med, ours_med = statistics.median(rb["epoch_s"][1:]), statistics.median(ours["epoch_s"][1:])
            round_ratios.append(rb_med / ours_med)
            print(f"round {r + 1}: RecBole {rb_med:.3f} s/epoch, ours {ours_med:.3f} s/epoch, ratio {round_ratios[-1]:.2f}x", flush=True)
    med = {side: statistics.median(v) for side, v in times.items()}
    result = {
        "model": args.model,
        "epochs_timed_per_side": len(times["ours"]),
        "median_epoch_s": med,
        "min_epoch_s": {side: min(v) for side, v in times.items()},
        "speedup_recbole_over_ours": med["recbole"] / med["ours"],
        # This machine's speed drifts by up to 2x over minutes; the per-round ratios pair epochs
        # measured seconds apart, so their median is the steadier figure.
        "speedup_per_round": round_ratios,
        "speedup_median_of_rounds": statistics.median(round_ratios),
        "epoch_s": times,
        **sizes,
        "loadavg_end": list(os.getloadavg()),
    }
    print(
        f"{args.model} on ml-100k: RecBole 1.2.1 {med['recbole']:.3f} s/epoch, ours {med['ours']:.3f} s/epoch "
        f"(medians of {len(times['ours'])} epochs each) -> ours is {result['speedup_recbole_over_ours']:.2f}x faster "
        f"(train interactions: RecBole {sizes['recbole_train_interactions']}, ours {sizes['our_train_interactions']})\n"
        f"per-round ratios {', '.join(f'{x:.2f}' for x in round_ratios)}: median {result['speedup_median_of_rounds']:.2f}x "
        f"(min {min(round_ratios):.2f}x, max {max(round_ratios):.2f}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
