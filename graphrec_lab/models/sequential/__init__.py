"""Sequential recommenders: each maps padded item sequences ``[B, L]`` to a state ``[B, D]``."""

from graphrec_lab.models.sequential.gru4rec import GRU4Rec
from graphrec_lab.models.sequential.sasrec import SASRec
from graphrec_lab.models.sequential.srgnn import SRGNN

__all__ = ["GRU4Rec", "SASRec", "SRGNN"]
