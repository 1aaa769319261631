"""Auxiliary training objectives the task adds to BPR + L2 (``RecommendationTask(objectives=...)``).

One module per objective or family: ``base`` (the ``Objective`` interface and ``StepContext``),
``contrastive`` (SGL, SimGCL, XSimGCL and ``info_nce``), ``text_alignment`` (graph-text alignment),
``mhcn`` (MHCN's self-supervision). ``OBJECTIVES`` lists every objective under the key its config uses
(``task.objectives.<key>``); configs name classes by their import path here
(``graphrec_lab.training.objectives.SGLContrast``).
"""

from graphrec_lab.training.objectives.base import Objective, StepContext
from graphrec_lab.training.objectives.contrastive import (
    ContrastiveObjective,
    SGLContrast,
    SimGCLContrast,
    XSimGCLContrast,
    batch_contrast,
    info_nce,
)
from graphrec_lab.training.objectives.mhcn import MHCNSelfSupervision
from graphrec_lab.training.objectives.text_alignment import TextAlignment

OBJECTIVES: dict[str, type[Objective]] = {
    "sgl": SGLContrast,
    "simgcl": SimGCLContrast,
    "xsimgcl": XSimGCLContrast,
    "text_align": TextAlignment,
    "mhcn_ssl": MHCNSelfSupervision,
}

__all__ = [
    "OBJECTIVES", "ContrastiveObjective", "MHCNSelfSupervision", "Objective", "SGLContrast", "SimGCLContrast", "StepContext", "TextAlignment",
    "XSimGCLContrast", "batch_contrast", "info_nce",
]
