"""experiments/model_zoo/epoch_table.py: per-epoch validation and training loss from CSV logs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EPOCH_TABLE = Path(__file__).resolve().parents[1] / "experiments" / "model_zoo" / "epoch_table.py"


def test_epoch_table_reads_per_epoch_validation_and_drops_the_test_stage_row(tmp_path: Path, capsys, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("epoch_table", EPOCH_TABLE)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    # Lightning's CSV logger: validation and training rows per epoch, then the test stage validates the
    # restored checkpoint again one epoch past the last (epoch 2 here), which is not a training epoch.
    header = "epoch,step,train/bpr,val/ndcg@20\n"
    rows = ["0,10,,0.05\n", "0,10,0.60,\n", "1,20,,0.07\n", "1,20,0.40,\n", "2,20,,0.07\n"]
    (tmp_path / "lightgcn-1.csv").write_text(header + "".join(rows))
    (tmp_path / "lightgcn-2.csv").write_text(header + "0,10,,0.03\n0,10,0.80,\n1,20,,0.09\n1,20,0.20,\n")
    val, bpr = module.read_log(tmp_path / "lightgcn-1.csv")
    assert val == {1: 0.05, 2: 0.07} and bpr == {1: 0.60, 2: 0.40}
    monkeypatch.setattr("sys.argv", ["epoch_table.py", str(tmp_path)])
    module.main()
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| lightgcn")][0]
    assert line == "| lightgcn | 2 | 0.0400 | 0.0800 | 0.7000 | 0.3000 |"
