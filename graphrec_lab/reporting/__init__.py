"""Turning run results into tables, significance tests and plots (``graphrec-lab report``), and
pushing them to W&B (``report --wandb``)."""

from graphrec_lab.reporting.report import (
    ReportError,
    Row,
    Table,
    build_table,
    load_records,
    render,
    to_csv,
    to_latex,
    to_markdown,
)
from graphrec_lab.reporting.significance import PairedTest, paired_test
from graphrec_lab.reporting.tables import mean_std
from graphrec_lab.reporting.wandb_push import push_report

__all__ = [
    "PairedTest", "ReportError", "Row", "Table", "build_table", "load_records", "mean_std",
    "paired_test", "push_report", "render", "to_csv", "to_latex", "to_markdown",
]
