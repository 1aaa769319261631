"""Edge attributions for any zoo GNN with PyG's ``torch_geometric.explain.Explainer``.

The zoo propagates with its own sparse kernels (``models.gnn.ops``), which PyG's explainers cannot
mask. ``PairScorer`` re-runs a trained model's layers through PyG ``MessagePassing`` modules (the
model's own ``GCNConv``/``SAGEConv``/``GINConv``/``GATConv``/``GatedGraphConv``, or ``LGConv`` for
the normalised propagation of LightGCN and NGCF) over the computation subgraph of the pair (u, i),
and returns the score s(u, i) = e_u . e_i. On that subgraph its score equals the model's (the
subgraph holds every node within K + 1 hops of u and i, so each node within K hops keeps its full
degree); ``explain_pair`` checks it. PyG then learns (GNNExplainer) or integrates (Captum's
Integrated Gradients, or Saliency) one mask value per directed edge; both directions of a user-item
edge are added up.

Not covered: the social models (SocialLGN, DiffNet, MHCN), whose layers mix a user-user channel and
hypergraph motifs that have no PyG module counterpart here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec_lab.inference.foldin import is_linear_propagation
from graphrec_lab.inference.run import InferenceError, LoadedRun
from graphrec_lab.models.gnn import gat, gated, gcn, gin, ngcf, sage
from graphrec_lab.models.gnn.base import hidden_activation
from graphrec_lab.models.gnn.gat import GAT

METHODS = ("gnnexplainer", "captum_ig", "saliency")


class ExplainUnsupportedError(InferenceError):
    """The model has no PyG message-passing counterpart for the explainers."""


def _layer_fn(model: nn.Module, lg: nn.Module):
    """``(k, x [n, D], edge_index [2, E]) -> [n, D_k]`` through PyG message passing, or None.

    ``lg``: an ``LGConv(normalize=True)`` registered on the caller (PyG masks only the submodules
    of the explained module)."""
    if is_linear_propagation(model):
        return lambda k, x, ei: lg(x, ei)
    if isinstance(model, gcn.GCN):
        return lambda k, x, ei: hidden_activation(model, k, model.convs[k](x, ei))
    if isinstance(model, sage.GraphSAGE):
        return lambda k, x, ei: hidden_activation(model, k, model.convs[k](x, ei))
    if isinstance(model, gin.GIN):
        return lambda k, x, ei: hidden_activation(model, k, model.convs[k](x, ei))
    if isinstance(model, gat.GAT):
        return lambda k, x, ei: hidden_activation(model, k, model.convs[k](x, ei), F.elu)
    if isinstance(model, ngcf.NGCF):

        def ngcf_layer(k: int, x: Tensor, ei: Tensor) -> Tensor:
            side = lg(x, ei)  # L E, the same symmetric normalisation (no self-loops)
            return F.leaky_relu(model.w1[k](side + x) + model.w2[k](side * x), model.negative_slope)

        return ngcf_layer
    if isinstance(model, gated.GatedGNN):
        conv = model.conv

        def gated_layer(k: int, x: Tensor, ei: Tensor) -> Tensor:
            h = torch.matmul(x, conv.weight[k])
            m = lg(h, ei) if model.adjacency == "sym" else conv.propagate(ei, x=h, edge_weight=None)
            return conv.rnn(m, x)

        return gated_layer
    return None


def supports(model: nn.Module) -> bool:
    from torch_geometric.nn import LGConv

    return _layer_fn(model, LGConv()) is not None


class PairScorer(nn.Module):
    """s(u, i) of a trained zoo GNN over a (sub)graph, through PyG message passing.

    ``forward(x [n, D] layer-0 rows, edge_index [2, E] local ids, pair [2] local (u, i)) -> [1]``."""

    def __init__(self, model: nn.Module) -> None:
        from torch_geometric.nn import LGConv

        super().__init__()
        self.lg = LGConv(normalize=True)
        layer = _layer_fn(model, self.lg)
        if layer is None:
            raise ExplainUnsupportedError(
                f"{type(model).__name__}: no PyG message-passing counterpart for GNNExplainer/Captum (covered: LightGCN "
                "family, NGCF, GCN, GraphSAGE, GIN, GAT, gated GNN; the social models mix a user-user channel)"
            )
        self.model = model
        self._layer = layer

    def nodes(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """The model's final node representations [n, D'] over the (sub)graph."""
        layers = [x]
        for k in range(self.model.num_layers):
            x = self._layer(k, x, edge_index)
            layers.append(x)
        return self.model.readout(layers)

    def forward(self, x: Tensor, edge_index: Tensor, pair: Tensor) -> Tensor:
        out = self.nodes(x, edge_index)
        return (out[pair[0]] * out[pair[1]]).sum().view(1)


class MarginScorer(PairScorer):
    """s(u, i) - s(u, j) for local ids ``pair = (u, i, j)`` [3]: positive while the target i still ranks
    above the competitor j. Read as a binary classifier's logit, it lets PyG's fidelity+/- (defined
    for classifiers, not for a regression score) ask whether a mask changes the ranking decision."""

    def forward(self, x: Tensor, edge_index: Tensor, pair: Tensor) -> Tensor:
        out = self.nodes(x, edge_index)
        return ((out[pair[1]] - out[pair[2]]) * out[pair[0]]).sum().view(1)


@dataclass
class EdgeAttribution:
    """One user-item training edge and its attribution (both directions summed)."""

    user: str
    item: str
    weight: float
    of_user: bool  # an interaction of the explained user


@dataclass
class GraphExplanation:
    method: str
    user: str
    item: str
    score: float  # the model's s(u, i)
    subgraph_score: float  # PairScorer's on the computation subgraph (equals ``score``)
    edges: list[EdgeAttribution]  # ranked, largest first
    seconds: float
    extra: dict = field(default_factory=dict)

    def format(self, top: int = 10) -> str:
        lines = [
            (
                f"{self.method}: s({self.user}, {self.item}) = {self.score:.6f} (subgraph: {self.subgraph_score:.6f}); "
                f"{len(self.edges)} user-item edges; {self.seconds:.2f} s"
            ),
            f"{'rank':>4}  {'user':<10}  {'item':<10}  {'weight':>10}",
        ]
        for r, e in enumerate(self.edges[:top], start=1):
            lines.append(f"{r:>4}  {e.user:<10}  {e.item:<10}  {e.weight:10.4g}{'  (user history)' if e.of_user else ''}")
        for k, rows in enumerate(self.extra.get("attention", []), start=1):
            into_user = [r for r in rows if r[1] == f"user:{self.user}"][:top]
            lines.append(f"GAT layer {k} attention into user {self.user} (mean over heads): "
                         + ", ".join(f"{src} {w:.3f}" for src, _, w in into_user))
        return "\n".join(lines)


def computation_subgraph(run: LoadedRun, user: int, *items: int) -> tuple[Tensor, Tensor, Tensor]:
    """(node ids [n] of the subgraph, its edge_index [2, E] in local ids, the user and items [1 + len(items)]
    in local ids): every node within K + 1 hops of the user and the items (dense ids)."""
    from torch_geometric.utils import k_hop_subgraph

    graph = run.train_graph
    n_u = run.model.num_users
    seeds = torch.tensor([user, *(n_u + i for i in items)])
    subset, edge_index, mapping, _ = k_hop_subgraph(
        seeds, run.model.num_layers + 1, graph.edge_index, relabel_nodes=True, num_nodes=graph.num_nodes
    )
    return subset, edge_index, mapping


def _algorithm(method: str, epochs: int):
    from torch_geometric.explain.algorithm import CaptumExplainer, GNNExplainer

    if method == "gnnexplainer":
        return GNNExplainer(epochs=epochs)
    if method == "captum_ig":
        return CaptumExplainer("IntegratedGradients", internal_batch_size=1)
    if method == "saliency":
        return CaptumExplainer("Saliency")
    raise InferenceError(f"explain method {method!r}: expected one of {METHODS} (or 'exact' for the LightGCN family)")


def explain_pair(run: LoadedRun, user: str, item: str, method: str = "gnnexplainer", epochs: int = 100, seed: int = 0) -> GraphExplanation:
    """Edge attributions of s(user, item) (raw ids) by ``method`` (``METHODS``) over its computation subgraph."""
    from torch_geometric.explain import Explainer

    u = int(run.user_index([user])[0])
    i = int(run.item_index([item])[0])
    model = run.model
    scorer = PairScorer(model).eval()
    subset, edge_index, pair = computation_subgraph(run, u, i)
    with torch.no_grad():
        x = model.input()[subset]  # layer-0 rows of the subgraph's nodes
        user_emb, item_emb = run.embeddings()
        score = float(user_emb[u] @ item_emb[i])
        sub_score = float(scorer(x, edge_index, pair))
    if abs(sub_score - score) > 1e-4 * max(1.0, abs(score)):
        raise InferenceError(f"{run.model_name}: the PyG re-computation scores {sub_score:.6g}, the model {score:.6g}")
    if method in ("captum_ig", "saliency"):
        _require_captum()
    torch.manual_seed(seed)
    explainer = Explainer(
        model=scorer,
        algorithm=_algorithm(method, epochs),
        explanation_type="model",
        edge_mask_type="object",
        model_config={"mode": "regression", "task_level": "graph", "return_type": "raw"},
    )
    t0 = time.perf_counter()
    reset_masks(scorer)
    try:
        explanation = explainer(x.detach(), edge_index, pair=pair)
    finally:
        reset_masks(scorer)
    seconds = time.perf_counter() - t0
    mask = explanation.edge_mask.detach().double()
    extra = {}

    if isinstance(model, GAT):
        extra["attention"] = gat_attention(run, model, x.detach(), subset, edge_index, pair)
    return GraphExplanation(method, user, item, score, sub_score, _undirected(run, subset, edge_index, mask, u), seconds, extra)


def gat_attention(run: LoadedRun, model, x: Tensor, subset: Tensor, edge_index: Tensor, pair: Tensor) -> list[list[tuple[str, str, float]]]:
    """GAT's attention weights (mean over heads) on the messages into the user and into the item, per
    layer: ``[[(source, target, alpha), ...] for each layer]``, largest first; sources and targets
    are raw ids (``user:``/``item:`` prefixed, self-loops included)."""
    n_u = model.num_users

    def name(node: int) -> str:
        return f"user:{run.user_ids[node]}" if node < n_u else f"item:{run.item_ids[node - n_u]}"

    out = []
    with torch.no_grad():
        for k, conv in enumerate(model.convs):
            h, (ei, alpha) = conv(x, edge_index, return_attention_weights=True)
            keep = (ei[1] == pair[0]) | (ei[1] == pair[1])
            weights = alpha[keep].mean(-1)
            rows = [(name(int(subset[s])), name(int(subset[d])), float(w)) for s, d, w in zip(ei[0][keep], ei[1][keep], weights)]
            out.append(sorted(rows, key=lambda r: -r[2]))
            x = hidden_activation(model, k, h, F.elu)
    return out


def reset_masks(module: nn.Module) -> None:
    """Drop explanation masks from every message-passing layer. GNNExplainer's mask is a Parameter, so
    PyG's ``clear_masks`` leaves a ``_edge_mask`` slot among the layer's parameters, and the next
    explainer's plain-tensor mask would then not be used by the layer."""
    from torch_geometric.nn.conv import MessagePassing

    for m in module.modules():
        if isinstance(m, MessagePassing):
            m._parameters.pop("_edge_mask", None)
            m._edge_mask = None
            m._loop_mask = None
            m._apply_sigmoid = True
            if m.explain is True:
                m.explain = None


def _undirected(run: LoadedRun, subset: Tensor, edge_index: Tensor, mask: Tensor, user: int) -> list[EdgeAttribution]:
    n_u = run.model.num_users
    src, dst = subset[edge_index[0]], subset[edge_index[1]]
    users = torch.minimum(src, dst)
    items = torch.maximum(src, dst) - n_u
    key = users * run.model.num_items + items
    uniq, inv = torch.unique(key, return_inverse=True)
    total = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inv, mask)
    order = torch.argsort(total, descending=True, stable=True)
    out = []
    for j in order.tolist():
        uu, ii = divmod(int(uniq[j]), run.model.num_items)
        out.append(EdgeAttribution(run.user_ids[uu], run.item_ids[ii], float(total[j]), uu == user))
    return out


def _require_captum() -> None:
    try:
        import captum  # noqa: F401
    except ImportError as exc:
        raise InferenceError("Captum-based explanations need captum: pip install 'graphrec-lab[explain]'") from exc
