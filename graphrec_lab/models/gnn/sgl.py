"""SGL (Wu et al., "Self-supervised Graph Learning for Recommendation", SIGIR 2021).

Encoder: LightGCN (``E = mean_{k=0..K} (D^-1/2 A D^-1/2)^k E^(0)``, [N, d]). Training adds, to BPR,
``lambda * (InfoNCE_users + InfoNCE_items)`` between the encodings of two graph views resampled
every epoch: edge dropout (SGL-ED, the paper's best, ``GraphRecommender.drop_edges``) or node dropout
(SGL-ND). The objective lives in the task (``training.objectives.SGLContrast``); configs/model/sgl.yaml
sets both. Paper defaults: d = 64, K = 3, drop ratio rho = 0.1, tau = 0.2, lambda = 0.1.
"""

from __future__ import annotations

from graphrec_lab.models.gnn.lightgcn import LightGCN


class SGL(LightGCN):
    """LightGCN's constructor and propagation; only the objective differs (see the module docstring)."""
