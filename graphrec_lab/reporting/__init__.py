"""Turning run results into tables (the start of `graphrec-lab report`)."""

from graphrec_lab.reporting.tables import mean_std

__all__ = ["mean_std"]
