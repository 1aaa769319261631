"""`graphrec-lab reproduce` (the alias of `study`): a paper's table beside ours, from a tiny fake study folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from graphrec_lab.cli import main
from graphrec_lab.data.sources import get_source
from graphrec_lab.studies import (
    StudySpecError,
    cell_overrides,
    format_delta,
    group_name,
    load_study,
    run_study,
)
from graphrec_lab.tracking.results import ResultStore
from tests.conftest import REPO

TINY_DATA = [
    "data.synthetic.num_users=120", "data.synthetic.num_items=150",
    "data.synthetic.interactions_per_user=15", "data.cache_dir=none",
]  # fmt: skip
PAPER = {
    "bprmf": {"test/recall@20": 0.30, "test/ndcg@20": 0.20},
    "lightgcn": {"test/recall@20": 0.35, "test/ndcg@20": 0.25},
}


def spec(tmp_path: Path) -> dict:
    """Two runnable rows on tiny synthetic data (1 epoch), one on files that are not there, one
    reference-only row."""
    return copy.deepcopy({
        "title": "Fake paper, Table 1",
        "source": {"paper": "Nobody et al. 2099", "table": "Table 1"},
        "protocol": "tiny synthetic graph, per-user 8:1:1, full ranking",
        "metrics": {"test/recall@20": "Recall@20", "test/ndcg@20": "NDCG@20",
                    "epochs": {"label": "epochs", "digits": 2}, "time/fit_s": {"label": "fit min", "digits": 1, "scale": 1 / 60}},
        "seeds": [0],
        "overrides": ["trainer.accelerator=cpu", "logger=csv"],
        "budgets": {
            "quick": {"description": "one epoch", "overrides": ["trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1"]},
            "paper": {"description": "two epochs", "overrides": ["trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1"]},
        },
        "rows": [
            {"id": "synth-bprmf", "label": {"dataset": "Synthetic", "method": "BPR-MF"}, "reference": PAPER["bprmf"],
             "overrides": ["model=bprmf", *TINY_DATA]},
            {"id": "synth-lightgcn", "label": {"dataset": "Synthetic", "method": "LightGCN"}, "reference": PAPER["lightgcn"],
             "overrides": ["model=lightgcn", *TINY_DATA]},
            {"id": "yelp2018-lightgcn", "label": {"dataset": "Yelp2018", "method": "LightGCN"}, "reference": PAPER["lightgcn"],
             "overrides": ["data=gowalla", "data.dataset=yelp2018", f"data.data_dir={tmp_path / 'no-data'}",
                           "data.download=false", "model=lightgcn"]},
            {"id": "synth-multvae", "label": {"dataset": "Synthetic", "method": "Mult-VAE"}, "reference": PAPER["bprmf"],
             "note": "no Mult-VAE model here"},
        ],
    })  # fmt: skip


def write_spec(folder: Path, content: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return path


def table_lines(text: str) -> dict[str, str]:
    """Markdown table rows by ``dataset/method``."""
    rows = [line for line in text.splitlines() if line.startswith(("| Synthetic", "| Yelp2018"))]
    return {"/".join(line.strip("| ").split(" | ")[:2]): line for line in rows}


def test_format_delta_by_hand():
    assert format_delta(0.15, 0.1830) == ("-0.0330", "-18.0%")  # -0.033 / 0.183 = -18.03 %
    assert format_delta(0.2, 0.16) == ("+0.0400", "+25.0%")
    assert format_delta(None, 0.1) == ("-", "-") and format_delta(0.1, None) == ("-", "-")


def test_reproduce_prints_table_with_deltas_then_report_only_rebuilds_it(tmp_path, capsys):
    folder = tmp_path / "fake-paper"
    write_spec(folder, spec(tmp_path))
    out = tmp_path / "out"

    main(["reproduce", str(folder), "--budget", "quick", "--out", str(out)])
    printed = capsys.readouterr().out

    records = ResultStore(out / "results.jsonl").read()
    assert len(records) == 2  # the two synthetic rows, one seed each; nothing for the others
    assert {r["group"] for r in records} == {"study-fake-paper-quick"}
    by_model = {r["config"]["model"]["_target_"].rsplit(".", 1)[-1]: r for r in records}
    rows = table_lines(printed)
    for model, method, target in (("bprmf", "BPR-MF", "MatrixFactorization"), ("lightgcn", "LightGCN", "LightGCN")):
        rec = by_model[target]
        assert rec["metrics"]["epochs"] == 1
        cells = []
        for metric in ("test/recall@20", "test/ndcg@20"):
            ours, paper = rec["metrics"][metric], PAPER[model][metric]
            diff = ours - paper
            cells += [f"{ours:.4f}", f"{paper:.4f}", f"{diff:+.4f}", f"{100 * diff / paper:+.1f}%"]
        assert rows[f"Synthetic/{method}"] == f"| Synthetic | {method} | 1 | {' | '.join(cells)} | 1.00 | {rec['metrics']['time/fit_s'] / 60:.1f} | ok |"

    # The row without its files is listed as not run, with the data layer's download hint.
    yelp = rows["Yelp2018/LightGCN"]
    assert yelp == "| Yelp2018 | LightGCN | - | - | 0.3500 | - | - | - | 0.2500 | - | - | - | - | not run |"
    missing = tmp_path / "no-data" / "yelp2018"
    assert f"- yelp2018-lightgcn: not run: files missing in {missing}" in printed
    assert get_source("yelp2018").url in printed and "train.txt" in printed
    assert rows["Synthetic/Mult-VAE"].endswith("| reference |") and "no Mult-VAE model here" in printed

    # Written to the results file, and --report-only rebuilds the same table without training.
    report = (out / "study-quick.md").read_text()
    assert printed in report and "Source: paper: Nobody et al. 2099" in report
    main(["reproduce", str(folder), "--budget", "quick", "--out", str(out), "--report-only"])
    assert capsys.readouterr().out == printed
    assert len(ResultStore(out / "results.jsonl").read()) == 2

    # Another budget's records are not this budget's table.
    again = run_study(folder, budget="paper", out=out, report_only=True, echo=lambda _: None)
    assert [r.status for r in again.results] == ["no record", "no record", "not run", "reference"]


def test_record_of_an_edited_row_is_not_used(tmp_path):
    """The store holds a record whose overrides are not what study.yaml says now: not in the table."""
    folder = tmp_path / "fake-paper"
    write_spec(folder, spec(tmp_path))
    exp = load_study(folder)
    row, budget = exp.cells[0], exp.budget("quick")
    out = tmp_path / "out"
    stale = cell_overrides(exp, row, budget, 0, out)
    stale[stale.index("model=bprmf")] = "model=lightgcn"
    ResultStore(out / "results.jsonl").append({
        "seed": 0, "group": group_name(exp, budget), "name": f"fake-paper-{row.id}", "overrides": stale,
        "metrics": {"test/recall@20": 0.9, "test/ndcg@20": 0.9, "epochs": 1},
    })  # fmt: skip
    repro = run_study(exp, budget="quick", rows=["synth-bprmf"], out=out, report_only=True, echo=lambda _: None)
    assert repro.results[0].status == "no record" and not repro.results[0].records
    good = cell_overrides(exp, row, budget, 0, out)
    ResultStore(out / "results.jsonl").append({
        "seed": 0, "group": group_name(exp, budget), "name": f"fake-paper-{row.id}", "overrides": good,
        "metrics": {"test/recall@20": 0.24, "test/ndcg@20": 0.1, "epochs": 1},
    })  # fmt: skip
    repro = run_study(exp, budget="quick", rows=["synth-*"], out=out, report_only=True, echo=lambda _: None)
    assert [r.cell.id for r in repro.results] == ["synth-bprmf", "synth-lightgcn", "synth-multvae"]
    assert repro.results[0].status == "ok" and repro.results[0].mean(exp.metrics[0]) == 0.24


def test_a_failing_row_is_reported_and_the_table_goes_on(tmp_path):
    folder = tmp_path / "fake-paper"
    write_spec(folder, spec(tmp_path))
    calls = []

    def runner(cfg, overrides):
        calls.append(overrides)
        raise RuntimeError("boom")

    repro = run_study(folder, rows=["synth-*"], out=tmp_path / "out", runner=runner, echo=lambda _: None)
    assert len(calls) == 2
    assert [r.status for r in repro.results] == ["failed", "failed", "reference"]
    assert "RuntimeError: boom" in repro.results[0].reason
    with pytest.raises(SystemExit, match="2 row\\(s\\) failed"):
        main(["reproduce", str(folder), "--rows", "synth-bprmf", "synth-lightgcn", "--out", str(tmp_path / "o2"),
              "task.lr=-1.0"])  # Adam rejects a negative learning rate


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("metrics"), "missing required key 'metrics'"),
        (lambda s: s["rows"][1]["reference"].update({"test/recall@20": "high"}),
         r"key 'rows\[1\] \(synth-lightgcn\)\.reference\.test/recall@20': expected a number, got 'high'"),
        (lambda s: s["rows"][0].update({"overides": []}), r"unknown key 'rows\[0\]\.overides'.*Did you mean 'overrides'"),
        (lambda s: s["rows"][0]["reference"].update({"test/hit@20": 0.5}), r"'rows\[0\] \(synth-bprmf\)\.reference\.test/hit@20': not one of"),
        (lambda s: s["rows"][2].update({"id": "synth-bprmf"}), r"key 'rows\[2\]\.id': duplicate row id 'synth-bprmf'"),
        (lambda s: s["rows"][0].update({"id": "a b"}), r"key 'rows\[0\]\.id'"),
        (lambda s: s["budgets"]["quick"].update({"overrides": ["seed=3"]}), r"'budgets\.quick\.overrides\[0\]': seed is set by the study runner"),
        (lambda s: s["rows"][0].update({"overrides": "model=bprmf"}), r"'rows\[0\] \(synth-bprmf\)\.overrides': expected a list"),
        (lambda s: s["rows"][0].update({"budgets": {"slow": ["x=1"]}}), r"'rows\[0\] \(synth-bprmf\)\.budgets\.slow': no such budget"),
        (lambda s: s.update({"seeds": ["a"]}), "key 'seeds'"),
    ],
)  # fmt: skip
def test_malformed_experiment_file_names_file_and_key(tmp_path, edit, message):
    content = spec(tmp_path)
    edit(content)
    path = write_spec(tmp_path / "bad", content)
    with pytest.raises(StudySpecError, match=message) as info:
        load_study(path.parent)
    assert str(path) in str(info.value)


def test_cli_errors_are_one_line_messages(tmp_path):
    path = write_spec(tmp_path / "bad", "title: x\nmetrics: [oops\n")
    with pytest.raises(SystemExit, match=rf"StudySpecError: {path}:3: not valid YAML"):
        main(["reproduce", str(path.parent)])
    write_spec(tmp_path / "ok", spec(tmp_path))
    with pytest.raises(SystemExit, match="budget 'huge' is not defined under 'budgets'; defined: quick, paper"):
        main(["reproduce", str(tmp_path / "ok"), "--budget", "huge", "--report-only"])
    with pytest.raises(SystemExit, match="--rows 'synth-bprm' matches no row.*Did you mean 'synth-bprmf'"):
        main(["reproduce", str(tmp_path / "ok"), "--rows", "synth-bprm", "--report-only"])
    with pytest.raises(SystemExit, match="no experiment 'lightgcn-sigir2'.*Did you mean 'lightgcn-sigir20'"):
        main(["reproduce", "lightgcn-sigir2", "--report-only"])


def test_malformed_file_lists_every_error_at_once(tmp_path):
    content = spec(tmp_path)
    content["rows"][0].update({"overides": []})
    content["rows"][1]["reference"] = {"test/recall@20": "high"}
    content["seeds"] = ["a"]
    path = write_spec(tmp_path / "bad", content)
    with pytest.raises(StudySpecError) as info:
        load_study(path.parent)
    text = str(info.value)
    assert text.startswith(f"{path}: 3 errors:")
    assert "'rows[0].overides'" in text and "'rows[1] (synth-lightgcn).reference.test/recall@20'" in text and "'seeds'" in text


def test_lightgcn_table4_numbers_match_the_datasets_readme():
    """The Gowalla rows are the numbers the datasets' README lists for Table 4."""
    exp = load_study("lightgcn-sigir20")
    paper = {c.id: c.reference for c in exp.cells}
    assert paper["gowalla-lightgcn"] == {"test/recall@20": 0.1830, "test/ndcg@20": 0.1554}
    assert paper["gowalla-ngcf"] == {"test/recall@20": 0.1570, "test/ndcg@20": 0.1327}
    assert {c.label["dataset"] for c in exp.cells} == {"Gowalla", "Yelp2018", "Amazon-Book"}
    assert exp.budget("paper").overrides[0] == "trainer.max_epochs=1000"
    assert json.dumps(exp.source)  # plain strings, printable in the report
