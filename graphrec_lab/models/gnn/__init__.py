"""Graph recommenders: one file per model, all ``GraphRecommender``s (``gnn.base``)."""

from graphrec_lab.models.gnn.base import GraphRecommender
from graphrec_lab.models.gnn.diffnet import DiffNet
from graphrec_lab.models.gnn.gat import GAT
from graphrec_lab.models.gnn.gated import GatedGNN
from graphrec_lab.models.gnn.gcn import GCN
from graphrec_lab.models.gnn.gin import GIN
from graphrec_lab.models.gnn.lightgcn import LightGCN
from graphrec_lab.models.gnn.mhcn import MHCN
from graphrec_lab.models.gnn.ngcf import NGCF
from graphrec_lab.models.gnn.sage import GraphSAGE
from graphrec_lab.models.gnn.sgl import SGL
from graphrec_lab.models.gnn.simgcl import SimGCL
from graphrec_lab.models.gnn.sociallgn import SocialLGN
from graphrec_lab.models.gnn.xsimgcl import XSimGCL

__all__ = ["GraphRecommender", "GAT", "GatedGNN", "GCN", "GIN", "LightGCN", "NGCF", "GraphSAGE", "SGL", "SimGCL", "XSimGCL", "DiffNet", "SocialLGN", "MHCN"]
