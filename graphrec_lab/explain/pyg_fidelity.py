"""PyG's fidelity+/- (GraphFramEx, ``torch_geometric.explain.metric.fidelity``) for a recommendation.

PyG defines fidelity for classifiers only (a regression score changes under any mask). The decision a
top-k list makes about its target i is binary: i ranks above the first item outside the list, the
competitor j. ``MarginScorer`` turns that decision into a classifier's logit s(u, i) - s(u, j) on the
computation subgraph of (u, i, j), and an explanation becomes a hard edge mask: both directions of the
user's m most attributed training interactions. Then, as PyG computes them for ``model`` explanations:

- fidelity+ = 1 if the decision flips when the explanation's edges are masked out (complement), else 0;
- fidelity- = 1 if it flips when only the explanation's edges are kept, else 0.

High fidelity+ and low fidelity- is a good explanation. PyG masks messages after the layers'
normalisation (degrees are not recomputed), unlike the deletion protocol of ``explain.fidelity``,
which rebuilds the graph without the removed interactions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec_lab.explain.pyg import MarginScorer, reset_masks, computation_subgraph
from graphrec_lab.inference.run import LoadedRun


class TopKFidelity:
    """PyG fidelity+/- of hard masks over one user's interactions, for one (target, competitor) decision.

    ``user``, ``target``, ``competitor``: dense ids; call with the removed interactions' items [m]."""

    def __init__(self, run: LoadedRun, user: int, target: int, competitor: int) -> None:
        from torch_geometric.explain import Explainer
        from torch_geometric.explain.algorithm import DummyExplainer

        self.scorer = MarginScorer(run.model).eval()
        self.subset, self.edge_index, self.local = computation_subgraph(run, user, target, competitor)
        with torch.no_grad():
            self.x = run.model.input()[self.subset].detach()
        self.explainer = Explainer(
            model=self.scorer,
            algorithm=DummyExplainer(),  # never called: the masks come from our attributions
            explanation_type="model",
            edge_mask_type="object",
            model_config={"mode": "binary_classification", "task_level": "graph", "return_type": "raw"},
        )
        self.decision = self.explainer.get_target(self.explainer.get_prediction(self.x, self.edge_index, pair=self.local))
        src, dst = self.subset[self.edge_index[0]], self.subset[self.edge_index[1]]
        self._user, self._n_u = user, run.model.num_users
        self._src, self._dst = src, dst

    def mask(self, items: Tensor) -> Tensor:
        """Hard edge mask [E]: 1 on both directions of the user's edges to ``items`` [m] (dense ids)."""
        nodes = self._n_u + items
        hit = ((self._src == self._user) & torch.isin(self._dst, nodes)) | ((self._dst == self._user) & torch.isin(self._src, nodes))
        return hit.float()

    def __call__(self, items: Tensor) -> tuple[float, float]:
        """(fidelity+, fidelity-) of the explanation "these interactions" for the top-k decision."""
        from torch_geometric.explain import Explanation
        from torch_geometric.explain.metric import fidelity

        explanation = Explanation(x=self.x, edge_index=self.edge_index, edge_mask=self.mask(items), target=self.decision, pair=self.local)
        explanation._model_args = ["pair"]
        reset_masks(self.scorer)
        try:
            return fidelity(self.explainer, explanation)
        finally:
            reset_masks(self.scorer)
