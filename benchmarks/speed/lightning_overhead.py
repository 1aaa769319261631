"""What Lightning's training loop adds to our LightGCN step, measured in one process.

Alternates rounds of (a) ``steps`` direct steps (``training_step`` + backward + Adam, no trainer) and
(b) a Lightning ``fit`` over ``steps + 1`` batches (no validation, logger, checkpoint or progress bar;
intervals between consecutive ``on_train_batch_end`` calls, so data loading and every hook count),
each with a fresh task, and prints the medians and their ratio. Alternating keeps the machine's drift out
of the ratio. The direct side reuses the first batches the datamodule yields; the fit draws its own.

    python benchmarks/speed/lightning_overhead.py --data gowalla --rounds 4
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from graphrec_lab.config import compose


class _BatchEnds(Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="gowalla", help="a configs/data name (gowalla, ml100k, ...)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side and round")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    cfg = compose([f"data={args.data}", "model=lightgcn", "seed=2020"])
    pl.seed_everything(2020, verbose=False)
    dm = instantiate(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    batches = [b for _, b in zip(range(args.steps + 1), dm.train_dataloader())]

    def new_task():
        model = instantiate(cfg.model, num_users=dm.num_users, num_items=dm.num_items, _convert_="all")
        task = instantiate(cfg.task, model=model, _recursive_=False, _convert_="all")
        task.attach_graph(dm.train_graph)
        return task

    def direct() -> list[float]:
        task = new_task()
        opt = task.configure_optimizers()
        task.on_train_epoch_start()
        times = []
        for i, batch in enumerate(batches):
            t = time.perf_counter()
            loss = task.training_step(batch, i)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
        return times[1:]  # the first step warms up

    def lightning() -> list[float]:
        timer = _BatchEnds()
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=args.steps + 1, limit_val_batches=0,
            num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[timer],
        )  # fmt: skip
        trainer.fit(new_task(), datamodule=dm)
        return [b - a for a, b in zip(timer.ends, timer.ends[1:])]

    all_direct, all_lightning = [], []
    for r in range(args.rounds):
        d, lt = direct(), lightning()
        all_direct += d
        all_lightning += lt
        print(f"round {r + 1}: direct {statistics.median(d) * 1e3:.1f} ms, Lightning {statistics.median(lt) * 1e3:.1f} ms", flush=True)
    md, ml = statistics.median(all_direct), statistics.median(all_lightning)
    print(f"{args.data}: direct {md * 1e3:.1f} ms/step, through Lightning {ml * 1e3:.1f} ms/step, Lightning/direct {ml / md:.2f}x")


if __name__ == "__main__":
    main()
