"""Recommendation models: plain ``nn.Module``s behind the ``Recommender`` interface."""

from graphrec_lab.models.base import Recommender
from graphrec_lab.models.gnn import GAT, GCN, GIN, NGCF, SGL, GatedGNN, GraphRecommender, GraphSAGE, LightGCN, SimGCL, XSimGCL
from graphrec_lab.models.gnn import MHCN, DiffNet, SocialLGN
from graphrec_lab.models.inputs import NodeInput
from graphrec_lab.models.mf import MatrixFactorization
from graphrec_lab.models.popularity import Popularity

__all__ = [
    "Recommender", "GraphRecommender", "NodeInput", "MatrixFactorization", "Popularity",
    "LightGCN", "GCN", "GAT", "GIN", "GraphSAGE", "GatedGNN", "NGCF", "SGL", "SimGCL", "XSimGCL",
    "DiffNet", "SocialLGN", "MHCN",
]
