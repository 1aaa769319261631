"""SimGCL (Yu et al., "Are Graph Augmentations Necessary? Simple Graph Contrastive Learning for
Recommendation", SIGIR 2022).

Encoder: LightGCN without the ego layer in the readout; a view perturbs every layer:

    E^(k+1) = D^-1/2 A D^-1/2 E^(k) (+ eps * sign(E^(k+1)) * normalize(U(0,1)^[N, d]) in a view)
    E = mean_{k=1..K} E^(k)                                          [N, d]

Training adds ``lambda * (InfoNCE_users + InfoNCE_items)`` between two perturbed encodings
(``forward(graph, perturb_eps=eps)``) on the batch's users and items
(``training.objectives.SimGCLContrast``). The BPR pass is unperturbed. Paper defaults (Yelp2018):
d = 64, K = 2 (the authors' SELFRec config), eps = 0.1, tau = 0.2, lambda = 0.5.
"""

from __future__ import annotations

from torch import Tensor

from graphrec_lab.models.gnn.lightgcn import LightGCN


class SimGCL(LightGCN):
    """Args as ``LightGCN`` with the SimGCL paper's defaults (readout fixed to ``mean_no_ego``)."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int = 64,
        num_layers: int = 2,
        init: str = "xavier_uniform",
        init_std: float = 0.1,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
    ) -> None:
        super().__init__(
            num_users, num_items, embedding_dim, num_layers, init, init_std, user_features, item_features, feature_mode,
            readout="mean_no_ego",
        )
