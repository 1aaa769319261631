"""XSimGCL (Yu et al., "XSimGCL: Towards Extremely Simple Graph Contrastive Learning for
Recommendation", TKDE 2023).

SimGCL's encoder (LightGCN, noise on every layer, ``E = mean_{k=1..K} E^(k)`` [N, d]) run ONCE per
step, perturbed: the final embeddings feed BPR and are contrasted (InfoNCE) with the same pass's
layer-l* embeddings E^(l*) [N, d] (``propagate`` returns every layer). Evaluation is unperturbed.
The objective is ``training.objectives.XSimGCLContrast`` (its ``main_perturb_eps`` tells the task
to perturb the BPR pass). Paper defaults (Yelp2018): d = 64, K = 2, l* = 1, eps = 0.2, tau = 0.15,
lambda = 0.2.
"""

from __future__ import annotations

from graphrec_lab.models.gnn.simgcl import SimGCL


class XSimGCL(SimGCL):
    """SimGCL's encoder and constructor; only the objective differs (see the module docstring)."""
