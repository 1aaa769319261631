"""Studies: a table in an experiment README is a study file plus its result records.

``spec`` parses and validates ``study.yaml`` (every error at once), ``run`` executes its cells
through ``run_experiment`` (resuming after the last stored cell), ``table`` builds the table from
the result records. ``graphrec-lab study <path-or-name>`` (alias ``reproduce``) is the command.
"""

from graphrec_lab.studies.run import cell_overrides, group_name, missing_data, run_name, run_study
from graphrec_lab.studies.spec import (
    Budget,
    Cell,
    Metric,
    Study,
    StudySpecError,
    all_studies,
    experiments_dir,
    find_study,
    load_study,
)
from graphrec_lab.studies.table import (
    CellResult,
    StudyResult,
    epochs_trained,
    format_delta,
    render_markdown,
    render_report,
    write_report,
)

__all__ = [
    "Budget", "Cell", "CellResult", "Metric", "Study", "StudyResult", "StudySpecError",
    "all_studies", "cell_overrides", "epochs_trained", "experiments_dir", "find_study", "format_delta", "group_name",
    "load_study", "missing_data", "render_markdown", "render_report", "run_name", "run_study", "write_report",
]  # fmt: skip
