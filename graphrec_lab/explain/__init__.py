"""Why a run recommends an item: the exact LightGCN-family decomposition (``exact``), PyG explainers
(GNNExplainer, Captum) for every zoo GNN (``pyg``), token attributions of text-fused runs (``text``),
plots, and deletion fidelity (``fidelity``).

Same layer as ``graphrec_lab.inference``: above ``experiment``/``training``; nothing below imports it.
"""

from graphrec_lab.explain.exact import ScoreDecomposition, decompose
from graphrec_lab.explain.pyg import METHODS, GraphExplanation, explain_pair

__all__ = ["METHODS", "GraphExplanation", "ScoreDecomposition", "decompose", "explain_pair"]
