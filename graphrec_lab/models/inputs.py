"""Layer-0 node representations shared by every trainable model: free ID embeddings, projected input
features (e.g. text-encoder embeddings), or their sum.

``feature_mode``:
  * ``"id"``: a free embedding per node (features are ignored);
  * ``"features"``: ``x = W f + b`` for the side(s) that have features; a side without features keeps
    free ID embeddings (so item text alone can replace item IDs);
  * ``"sum"``: ID embedding + projected features;
  * ``"gated"``: ID embedding + ``sigmoid(W_g [id; proj]) * proj`` (a learned per-dimension gate that
    decides, per node, how much text to let in; the gate starts half open).

Features are registered as non-persistent buffers: they are data, rebuilt by whoever builds the model,
and kept out of checkpoints. They are registered even in ``"id"`` mode, so an objective (the text
alignment loss) can read them while the layer-0 input stays ID-only. A trainable text encoder (LoRA)
hands fresh, gradient-carrying features in for one step with ``set_live_features``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrec_lab.models.base import init_embedding

FEATURE_MODES = ("id", "features", "sum", "gated")


class NodeInput(nn.Module):
    """Maps node ids to layer-0 vectors ``E^(0)`` [(U+I), D].

    Args:
        num_users, num_items: node counts (users are nodes ``0..U-1``, items ``U..U+I-1``).
        embedding_dim: D.
        user_features: [U, F_u] or None.
        item_features: [I, F_i] or None.
        feature_mode: ``"id"``, ``"features"``, ``"sum"`` or ``"gated"`` (see the module docstring).
        init, init_std: ID-embedding initialisation (``base.init_embedding``).
        shared_table: one ID table of U+I rows (LightGCN's layout: Xavier's fan is computed over U+I
            rows) instead of one table per side (MF's layout). Kept so both models reproduce their
            earlier results exactly.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        embedding_dim: int,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
        feature_mode: str = "id",
        init: str = "normal",
        init_std: float = 0.1,
        shared_table: bool = False,
    ) -> None:
        super().__init__()
        if feature_mode not in FEATURE_MODES:
            raise ValueError(f"feature_mode={feature_mode!r}: expected one of {FEATURE_MODES}")
        if feature_mode != "id" and user_features is None and item_features is None:
            raise ValueError(f"feature_mode={feature_mode!r} needs user_features and/or item_features")
        for name, feats, n in (("user_features", user_features, num_users), ("item_features", item_features, num_items)):
            if feats is not None and (feats.dim() != 2 or feats.size(0) != n):
                raise ValueError(f"{name} must be [{n}, F], got {tuple(feats.shape)}")
        self.num_users, self.num_items, self.embedding_dim = num_users, num_items, embedding_dim
        self.feature_mode = feature_mode
        use_feats = feature_mode != "id"
        self.user_ids = not (use_feats and feature_mode == "features" and user_features is not None)
        self.item_ids = not (use_feats and feature_mode == "features" and item_features is not None)

        # Tables are created first and initialised after, in the order LightGCN and MF always did,
        # so the global RNG stream (and the seed's results) are unchanged.
        self.embedding: nn.Embedding | None = None
        self.user_embedding: nn.Embedding | None = None
        self.item_embedding: nn.Embedding | None = None
        if shared_table and self.user_ids and self.item_ids:
            self.embedding = nn.Embedding(num_users + num_items, embedding_dim)
        else:
            if self.user_ids:
                self.user_embedding = nn.Embedding(num_users, embedding_dim)
            if self.item_ids:
                self.item_embedding = nn.Embedding(num_items, embedding_dim)
        for table in (self.embedding, self.user_embedding, self.item_embedding):
            if table is None:
                continue
            if table is self.embedding and init.startswith("xavier"):
                # Xavier's scale depends on the table's shape: the papers' code and RecBole have one
                # [U, D] and one [I, D] table, so each block is initialised with its own fan.
                init_embedding(table.weight[:num_users], init, init_std)
                init_embedding(table.weight[num_users:], init, init_std)
            else:
                init_embedding(table.weight, init, init_std)

        self.user_proj = self.item_proj = None
        self.user_gate = self.item_gate = None
        for side, feats in (("user", user_features), ("item", item_features)):
            self.register_buffer(f"{side}_features", None if feats is None else feats.float(), persistent=False)
            if feats is None:
                continue
            if use_feats:
                setattr(self, f"{side}_proj", nn.Linear(feats.size(1), embedding_dim))
            if feature_mode == "gated":
                gate = nn.Linear(2 * embedding_dim, embedding_dim)
                nn.init.zeros_(gate.weight)
                nn.init.zeros_(gate.bias)
                setattr(self, f"{side}_gate", gate)
        self._live: dict[str, Tensor] = {}

    def _ids(self, side: str, idx: Tensor | None) -> Tensor | None:
        if self.embedding is not None:  # shared [U+I, D] table
            lo, hi = (0, self.num_users) if side == "user" else (self.num_users, self.num_users + self.num_items)
            return self.embedding.weight[lo:hi] if idx is None else self.embedding.weight.index_select(0, idx + lo)
        table: nn.Embedding | None = getattr(self, f"{side}_embedding")
        if table is None:
            return None
        return table.weight if idx is None else table.weight.index_select(0, idx)

    def features(self, side: str) -> Tensor | None:
        """The side's input features [n, F]: the live (gradient-carrying) ones during a LoRA step,
        else the buffer; None when the model was built without features for that side."""
        live = self._live.get(side)
        return live if live is not None else getattr(self, f"{side}_features")

    def set_live_features(self, side: str, features: Tensor | None) -> None:
        """Use ``features`` [n, F] (e.g. the text bank with the batch's rows freshly encoded, with
        gradients) instead of the buffer until called again with None."""
        if features is None:
            self._live.pop(side, None)
            return
        buffer = getattr(self, f"{side}_features")
        if buffer is None or features.shape != buffer.shape:
            raise ValueError(f"live {side} features must have shape {None if buffer is None else tuple(buffer.shape)}, got {tuple(features.shape)}")
        self._live[side] = features

    def _side(self, side: str, idx: Tensor | None) -> Tensor:
        """Layer-0 rows of one side: all of them ([n, D]) when ``idx`` is None, else [len(idx), D]."""
        out = self._ids(side, idx)
        proj: nn.Linear | None = getattr(self, f"{side}_proj")
        if proj is not None:
            feats = self.features(side)
            assert feats is not None
            x = proj(feats if idx is None else feats.index_select(0, idx))
            gate: nn.Linear | None = getattr(self, f"{side}_gate")
            if gate is not None and out is not None:
                x = torch.sigmoid(gate(torch.cat([out, x], dim=-1))) * x
            out = x if out is None else out + x
        assert out is not None
        return out

    @property
    def ids_only(self) -> bool:
        return self.user_proj is None and self.item_proj is None

    def forward(self) -> Tensor:
        """``E^(0)`` [(U+I), D]."""
        if self.embedding is not None and self.ids_only:
            return self.embedding.weight
        return torch.cat([self.users(), self.items()])

    def users(self, idx: Tensor | None = None) -> Tensor:
        """User rows: [U, D], or [B, D] for ``idx`` [B]."""
        return self._side("user", idx)

    def items(self, idx: Tensor | None = None) -> Tensor:
        """Item rows: [I, D], or [B, D] for ``idx`` [B]."""
        return self._side("item", idx)

    def batch_rows(self, users: Tensor, pos_items: Tensor, neg_items: Tensor) -> list[Tensor]:
        """The batch's layer-0 rows (what L2 regularisation acts on): three [B, D] tensors."""
        if self.embedding is not None and self.ids_only:
            # One gather (LightGCN's original path: identical numbers, one index_select backward).
            n = self.num_users
            rows = self.embedding.weight.index_select(0, torch.cat([users, pos_items + n, neg_items + n]))
            return list(rows.split([users.numel(), pos_items.numel(), neg_items.numel()]))
        items = self.items(torch.cat([pos_items, neg_items]))
        return [self.users(users), *items.split([pos_items.numel(), neg_items.numel()])]
