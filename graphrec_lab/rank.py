"""Entry point of ranks 1.. of a run that ``graphrec_lab.distributed.launch_local_ranks`` starts on one
node: ``python -m graphrec_lab.rank <config.yaml written by rank 0>``.

Kept apart from the launcher: the launcher is part of ``run_experiment``, and this entry point calls
``run_experiment``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from graphrec_lab.experiment import run_experiment


def main(argv: list[str] | None = None) -> None:
    """Rank 1.. entry: ``python -m graphrec_lab.rank <config.yaml>``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m graphrec_lab.rank <config.yaml written by rank 0>")
    if "LOCAL_RANK" not in os.environ:
        raise SystemExit("graphrec_lab.rank runs ranks started by graphrec_lab's launcher (LOCAL_RANK unset)")
    logging.basicConfig(level=logging.WARNING, format=f"[rank {os.environ['LOCAL_RANK']}] %(levelname)s %(name)s: %(message)s")
    path = Path(args[0])
    cfg = OmegaConf.load(path)
    overrides_file = path.with_suffix(".overrides")
    overrides = overrides_file.read_text().splitlines() if overrides_file.exists() else []
    assert isinstance(cfg, DictConfig)
    run_experiment(cfg, overrides=overrides)


if __name__ == "__main__":
    main()
