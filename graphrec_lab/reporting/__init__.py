"""Turning run results into tables, significance tests and plots (``graphrec-lab report``)."""

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

__all__ = [
    "PairedTest", "ReportError", "Row", "Table", "build_table", "load_records", "mean_std",
    "paired_test", "render", "to_csv", "to_latex", "to_markdown",
]
