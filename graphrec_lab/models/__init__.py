"""Recommendation models: plain ``nn.Module``s behind the ``Recommender`` interface."""

from graphrec_lab.models.base import Recommender
from graphrec_lab.models.gnn.lightgcn import LightGCN
from graphrec_lab.models.mf import MatrixFactorization
from graphrec_lab.models.popularity import Popularity

__all__ = ["Recommender", "LightGCN", "MatrixFactorization", "Popularity"]
