"""`graphrec-lab report`: ablation tables from result records, paired tests, formats, plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from graphrec_lab.cli import main
from graphrec_lab.reporting import ReportError, build_table, load_records, paired_test, to_csv, to_latex, to_markdown
from graphrec_lab.reporting.plots import plot_filename, plot_metric_vs_factor
from graphrec_lab.tracking.results import ResultStore

VALUES = {  # model -> test/ndcg@20 per seed 0, 1, 2
    "bprmf": [0.10, 0.12, 0.11],
    "lightgcn": [0.15, 0.16, 0.14],
}


def record(model: str, seed: int, value: float, group: str = "g1", **extra_metrics: float) -> dict:
    target = {"bprmf": "graphrec_lab.models.MatrixFactorization", "lightgcn": "graphrec_lab.models.LightGCN"}[model]
    return {
        "run_id": f"{model}-{seed}",
        "group": group,
        "seed": seed,
        "optimized_metric": "val/ndcg@20",
        # paths.root differs per run and group/seed are not factors: only `model` varies.
        "overrides": [f"paths.root=/out/{model}{seed}", f"model={model}", f"seed={seed}", f"group={group}"],
        "config": {"model": {"_target_": target}, "seed": seed},
        "metrics": {"test/ndcg@20": value, "val/ndcg@20": value - 0.01, **extra_metrics},
    }


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    path = tmp_path / "results.jsonl"
    rs = ResultStore(path)
    for model, values in VALUES.items():
        for seed, value in enumerate(values):
            rs.append(record(model, seed, value))
    rs.append(record("lightgcn", 0, 0.5, group="other"))  # another ablation: filtered out by --group
    return path


def test_markdown_table_mean_std_and_paired_t_test(store):
    table = build_table(load_records([store]), metrics=["test/ndcg@20"], group="g1", baseline="model=bprmf")
    p = stats.ttest_rel(VALUES["lightgcn"], VALUES["bprmf"]).pvalue
    assert f"{p:.3g}" == "0.0202"
    assert to_markdown(table) == (
        "| model | n | test/ndcg@20 | p (t-test) |\n"
        "|---|---|---|---|\n"
        "| bprmf | 3 | 0.1100 ± 0.0100 | baseline |\n"
        "| lightgcn | 3 | 0.1500 ± 0.0100 | 0.0202 |\n"
        "\n"
        "mean ± std over seeds; p: two-sided paired test against model=bprmf over the seeds both rows ran\n"
    )
    test = table.rows[1].tests["test/ndcg@20"]
    assert test.p_ttest == pytest.approx(p, rel=1e-12) and test.seeds == (0, 1, 2)
    assert test.p_wilcoxon is None  # n < 6


def test_latex_and_csv(store):
    table = build_table(load_records([store]), metrics=["test/ndcg@20"], group="g1", baseline="model=bprmf")
    assert to_latex(table) == (
        "% mean ± std over seeds; p: two-sided paired test against model=bprmf over the seeds both rows ran\n"
        "\\begin{tabular}{lrcc}\n"
        "\\toprule\n"
        "model & n & test/ndcg@20 & p (t-test) \\\\\n"
        "\\midrule\n"
        "bprmf & 3 & $0.1100 \\pm 0.0100$ & baseline \\\\\n"
        "lightgcn & 3 & $0.1500 \\pm 0.0100$ & $0.0202$ \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )
    rows = to_csv(table).splitlines()
    assert rows[0] == "model,n,seeds,test/ndcg@20 mean,test/ndcg@20 std,test/ndcg@20 p_ttest,test/ndcg@20 p_wilcoxon"
    base = rows[1].split(",")
    assert base[:3] == ["bprmf", "3", "0 1 2"] and base[5:] == ["baseline", "baseline"]
    assert float(base[3]) == pytest.approx(0.11) and float(base[4]) == pytest.approx(0.01)
    cells = rows[2].split(",")
    assert float(cells[3]) == pytest.approx(0.15) and float(cells[4]) == pytest.approx(0.01)
    assert float(cells[5]) == stats.ttest_rel(VALUES["lightgcn"], VALUES["bprmf"]).pvalue
    assert cells[6] == ""  # no Wilcoxon below 6 seeds


def test_wilcoxon_from_six_seeds_and_pairing_by_seed(tmp_path):
    a = [0.10, 0.11, 0.12, 0.13, 0.09, 0.10]
    b = [0.12, 0.15, 0.13, 0.16, 0.10, 0.14]
    rs = ResultStore(tmp_path / "r.jsonl")
    # Written in a scrambled order: pairs must follow the seed, not the file order.
    for seed in (3, 0, 5, 1, 4, 2):
        rs.append(record("lightgcn", seed, b[seed]))
    for seed in range(6):
        rs.append(record("bprmf", seed, a[seed]))
    table = build_table(load_records([rs.path]), metrics=["test/ndcg@20"], baseline="model=bprmf")
    test = table.rows[1].tests["test/ndcg@20"]
    assert test.p_ttest == stats.ttest_rel(b, a).pvalue
    assert test.p_wilcoxon == stats.wilcoxon(b, a).pvalue
    assert "p (Wilcoxon)" in to_markdown(table)


def test_paired_test_uses_only_common_seeds():
    t = paired_test({0: 1.0, 1: 2.0, 2: 3.5, 7: 9.0}, {0: 0.5, 1: 1.0, 2: 1.0})
    assert t.seeds == (0, 1, 2)
    assert t.p_ttest == stats.ttest_rel([1.0, 2.0, 3.5], [0.5, 1.0, 1.0]).pvalue
    assert paired_test({0: 1.0}, {0: 0.5}).p_ttest is None  # one pair: no test


def test_by_config_key_and_numeric_factor_values(tmp_path):
    rs = ResultStore(tmp_path / "r.jsonl")
    for seed, lr in enumerate(["0.01", "1e-2", "0.1"]):
        r = record("lightgcn", seed, 0.1 + seed)
        r["overrides"].append(f"task.lr={lr}")
        rs.append(r)
    table = build_table(load_records([rs.path]), metrics=["test/ndcg@20"])
    assert table.factors == ["task.lr"]
    assert [len(r.seeds) for r in table.rows] == [2, 1]  # 0.01 and 1e-2 are one factor value
    by = build_table(load_records([rs.path]), metrics=["test/ndcg@20"], by=["model._target_"])
    assert by.factors == ["model._target_"] and len(by.rows) == 1 and by.rows[0].seeds == [0, 1, 2]
    assert "model.\\_target\\_" in to_latex(by)
    with pytest.raises(ReportError, match="no record's config has that key"):
        build_table(load_records([rs.path]), by=["model.nope"])


def test_malformed_record_names_file_and_line(tmp_path):
    path = tmp_path / "results.jsonl"
    rs = ResultStore(path)
    rs.append(record("bprmf", 0, 0.1))
    with open(path, "a") as fh:
        fh.write("this is not json\n")
    rs.append(record("bprmf", 1, 0.2))
    with pytest.raises(ReportError, match=rf"{path}:2: malformed result record"):
        load_records([path])
    path.write_text(json.dumps(record("bprmf", 0, 0.1)) + "\n" + json.dumps({"seed": 1, "metrics": "x"}) + "\n")
    with pytest.raises(ReportError, match=rf"{path}:2: malformed result record: 'metrics'"):
        load_records([path])
    with pytest.raises(SystemExit, match=rf"ReportError: {path}:2"):
        main(["report", "--results", str(path)])


def test_torn_line_from_a_killed_writer_is_skipped(tmp_path):
    path = tmp_path / "results.jsonl"
    rs = ResultStore(path)
    rs.append(record("bprmf", 0, 0.1))
    with open(path, "a") as fh:
        fh.write(json.dumps(record("bprmf", 1, 0.2))[:57])  # killed mid-write
    rs.append(record("bprmf", 2, 0.3))  # ResultStore starts it on a fresh line
    records = load_records([path])
    assert [r["seed"] for r in records] == [0, 2]


def test_baseline_must_match_exactly_one_row(store):
    records = load_records([store])
    with pytest.raises(ReportError, match="matches 0 rows"):
        build_table(records, group="g1", baseline="model=ngcf")
    with pytest.raises(ReportError, match="not a varying factor"):
        build_table(records, group="g1", baseline="task.lr=0.1")
    with pytest.raises(ReportError, match="no result record has group"):
        build_table(records, group="nope")
    with pytest.raises(ReportError, match="available: test/ndcg@20, val/ndcg@20"):
        build_table(records, metrics=["test/nope"])


def test_cli_report_prints_table_and_writes_plots(store, tmp_path, capsys):
    main(["report", "--results", str(store), "--group", "g1", "--metrics", "test/ndcg@20,val/ndcg@20",
          "--baseline", "model=bprmf", "--format", "csv", "--plot", "model", "--out", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    table = build_table(load_records([store]), metrics=["test/ndcg@20", "val/ndcg@20"], group="g1", baseline="model=bprmf")
    assert out == to_csv(table)
    for metric in ("test/ndcg@20", "val/ndcg@20"):
        png = tmp_path / "plots" / plot_filename(metric, "model")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_rejects_unknown_factor(store, tmp_path):
    table = build_table(load_records([store]), metrics=["test/ndcg@20"], group="g1")
    with pytest.raises(ReportError, match="not a varying factor"):
        plot_metric_vs_factor(table, "task.lr", "test/ndcg@20", tmp_path / "x.png")


# ------------------------------------------------------------------------------------------------
def _wandb_run_record(run_file: Path) -> dict:
    """The run record (group, display name, tags) of an offline run, via `wandb leet inspect`."""
    wandb_cli = Path(sys.executable).parent / "wandb"
    out = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(run_file)],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        pytest.skip(f"`wandb leet inspect` unavailable: {out.stderr[-300:]}")
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    run = next(r["run"] for r in records if r["type"] == "run")
    run["metrics"] = [r["metric"] for r in records if r["type"] == "metric"]
    return run


@pytest.mark.slow
def test_multirun_two_models_three_seeds_six_wandb_runs_one_group_and_report(tmp_path):
    """`run -m model=bprmf,lightgcn seed=0,1,2 group=G`: 6 W&B offline runs in group G, then a table."""
    out = tmp_path / "outputs"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1",
           "NETRC": str(tmp_path / "no-netrc")}
    env.pop("WANDB_API_KEY", None)
    cmd = [
        str(Path(sys.executable).parent / "graphrec-lab"), "run", "-m",
        "model=bprmf,lightgcn", "seed=0,1,2", "group=ablation-g7",
        f"paths.root={out}", "data.synthetic.num_users=120", "data.synthetic.num_items=150",
        "data.synthetic.interactions_per_user=15", "data.cache_dir=none", "trainer.max_epochs=4",
        "trainer.check_val_every_n_epoch=2", "trainer.accelerator=cpu", "print_table=false",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run_files = sorted(out.glob("runs/*/*/wandb/offline-run-*/run-*.wandb"))
    assert len(run_files) == 6, run_files
    runs = [_wandb_run_record(f) for f in run_files]
    assert {r["run_group"] for r in runs} == {"ablation-g7"}
    names = sorted(r["display_name"] for r in runs)
    assert names == sorted(f"model={m},seed={s}" for m in ("bprmf", "lightgcn") for s in range(3))
    for r in runs:
        assert sorted(r["tags"]) == sorted(r["display_name"].split(","))
        summaries = {m.get("glob_name"): m.get("summary") for m in r["metrics"]}
        assert summaries["val/*"] == {"max": True} and summaries["test/*"] == {"last": True}

    records = ResultStore(out / "results.jsonl").read()
    assert len(records) == 6 and {r["group"] for r in records} == {"ablation-g7"}
    report = subprocess.run(
        [str(Path(sys.executable).parent / "graphrec-lab"), "report", "--results", str(out / "results.jsonl"),
         "--group", "ablation-g7", "--metrics", "test/ndcg@20", "--baseline", "model=bprmf"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    by = {m: {r["seed"]: r["metrics"]["test/ndcg@20"] for r in records if f"model={m}" in r["overrides"]}
          for m in ("bprmf", "lightgcn")}
    p = stats.ttest_rel([by["lightgcn"][s] for s in range(3)], [by["bprmf"][s] for s in range(3)]).pvalue
    lines = report.stdout.splitlines()
    assert lines[0] == "| model | n | test/ndcg@20 | p (t-test) |"
    assert lines[2].startswith("| bprmf | 3 | ") and lines[2].endswith(" | baseline |")
    assert lines[3].startswith("| lightgcn | 3 | ") and lines[3].endswith(f" | {p:.3g} |")
    assert " ± " in lines[3]
