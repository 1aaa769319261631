"""File-system names of runs: a run's logical name (``lightgcn-recbole:ml-100k``) is kept in its
record and its W&B run; the folder it writes to uses a name safe on every file system."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_dir_name(name: str) -> str:
    """``name`` with every run of characters outside ``[A-Za-z0-9._-]`` replaced by ``_``.

    ``lightgcn-recbole:ml-100k`` -> ``lightgcn-recbole_ml-100k``; ``a/b`` -> ``a_b`` (one folder,
    never a subfolder). Leading and trailing dots are dropped, so ``..`` cannot leave the runs
    folder and no name ends in a dot (Windows); a name with nothing left is ``run``.
    """
    return _UNSAFE.sub("_", name).strip(".") or "run"
