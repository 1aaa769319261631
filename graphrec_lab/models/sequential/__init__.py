"""Sequential recommenders: each maps padded item sequences ``[B, L]`` to a state ``[B, D]``."""

from graphrec_lab.models.sequential.gru4rec import GRU4Rec
from graphrec_lab.models.sequential.sasrec import SASRec
from graphrec_lab.models.sequential.srgnn import SRGNN
from graphrec_lab.models.sequential.unisrec import MoEAdaptor, TextSASRec

__all__ = ["GRU4Rec", "MoEAdaptor", "SASRec", "SRGNN", "TextSASRec"]
