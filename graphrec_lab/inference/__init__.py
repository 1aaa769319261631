"""From a finished run to recommendations: ``load_run``, top-K lists, new-user fold-in, embedding export.

This layer sits above ``experiment``/``training``: it may import models, data, training, evaluation
and tracking; nothing below imports it.
"""

from graphrec_lab.inference.foldin import FoldInError, fold_in
from graphrec_lab.inference.recommend import Recommendation, recommend, recommend_new_user, recommend_with_index
from graphrec_lab.inference.run import InferenceError, LoadedRun, RunLoadError, UnknownIdError, load_run

__all__ = [
    "FoldInError",
    "InferenceError",
    "LoadedRun",
    "Recommendation",
    "RunLoadError",
    "UnknownIdError",
    "fold_in",
    "load_run",
    "recommend",
    "recommend_new_user",
    "recommend_with_index",
]
