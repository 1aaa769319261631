"""Sparse products over the user-item graph that models and training share.

``A`` is a graph's symmetric normalised adjacency ``norm_adj`` [N, N] (N = U + I, users first;
``data.train_graph.TrainGraph``). ``BlockAdjacency`` stores it as its two user-item blocks for faster
products; ``symmetric_spmm`` is ``A @ X`` with ``A``'s own product as its backward;
``propagate_layer_mean`` is LightGCN's layer-mean readout ``mean_k A^k X`` in one autograd node.
``operator_cache`` keeps operators derived from a graph on that graph object, built once per graph.
Every kernel runs in fp32, also under autocast (the CPU sparse kernels lack bf16).
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphrec_lab.data.train_graph import TrainGraph


class BlockAdjacency:
    """A symmetric sparse [N, N] matrix over users then items, stored as its user-item block
    ``R`` [U, I] (CSR), its item-user block ``R^T`` [I, U] (CSR) and whatever else it holds (``rest``,
    [N, N] CSR or None: self-loops of isolated nodes, user-user or item-item entries).

    Why: ``A @ X`` as two block products written into one output is 1.4x faster than one CSR product
    of the whole matrix on Gowalla (each block reads only the other side's rows, a smaller working
    set) and within 5% on MovieLens-100K (experiments/speed/kernels.py).
    """

    def __init__(self, adj: Tensor, num_users: int) -> None:
        n = adj.shape[0]
        crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
        row = torch.repeat_interleave(torch.arange(n, device=crow.device), crow.diff())
        user_item = (row < num_users) & (col >= num_users)
        item_user = (row >= num_users) & (col < num_users)
        rest = ~(user_item | item_user)
        num_items = n - num_users
        self.num_users, self.dtype = num_users, adj.dtype
        # CSR order (row, then column) survives the masks, so the blocks need no sorting.
        self.user_item = self._csr(row[user_item], col[user_item] - num_users, val[user_item], num_users, num_items)
        self.item_user = self._csr(row[item_user] - num_users, col[item_user], val[item_user], num_items, num_users)
        self.rest = self._csr(row[rest], col[rest], val[rest], n, n) if bool(rest.any()) else None

    @staticmethod
    def _csr(rows: Tensor, cols: Tensor, values: Tensor, num_rows: int, num_cols: int) -> Tensor:
        crow = torch.zeros(num_rows + 1, dtype=torch.int64, device=rows.device)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
        # int32 indices where they fit: the CPU (MKL) product converts int64 indices to int32 on every
        # call, two copies of the index arrays per product (experiments/speed/kernels.py).
        if max(values.numel(), num_rows, num_cols) < 2**31 - 1:
            crow, cols = crow.int(), cols.int()
        return torch.sparse_csr_tensor(crow, cols, values, (num_rows, num_cols))

    def matmul(self, x: Tensor) -> Tensor:
        """A @ x: [N, D] -> [N, D] (no autograd; see ``symmetric_spmm``)."""
        x = x.contiguous()
        u = self.num_users
        out = torch.empty_like(x)
        self._product_into(out[:u], self.user_item, x[u:])
        self._product_into(out[u:], self.item_user, x[:u])
        if self.rest is not None:
            out.add_(torch.sparse.mm(self.rest, x))
        return out

    @staticmethod
    def _product_into(out: Tensor, block: Tensor, x: Tensor) -> None:
        """out = block @ x, written into ``out`` (rows of a bigger output). addmm with beta=0 writes the
        product straight into them (BLAS semantics: the uninitialised input is ignored);
        torch.mm(out=...) fills a zero buffer and copies it over."""
        torch.addmm(out, block, x, beta=0, out=out)

    # ------------------------------------------------------------- products restricted to some rows
    # A loss that reads only some rows of ``A^K X`` (a BPR batch's users and items) needs only those
    # rows of the last product, and the backward's first product ``A S^T G`` only the matching columns.

    def row_share(self, rows: Tensor) -> float:
        """Share of A's nonzeros in ``rows`` (sorted unique node ids [R]): what a restricted product costs
        relative to a full one."""
        u = self.num_users
        split = int(torch.searchsorted(rows, u))
        nnz = sum(self._row_counts(block, r) for block, r in ((self.user_item, rows[:split]), (self.item_user, rows[split:] - u)))
        return float(nnz) / max(self.user_item._nnz() + self.item_user._nnz(), 1)

    @staticmethod
    def _row_counts(block: Tensor, rows: Tensor) -> int:
        crow = block.crow_indices()
        return int((crow[rows + 1] - crow[rows]).sum())

    @staticmethod
    def _select_rows(block: Tensor, rows: Tensor) -> Tensor:
        """block[rows, :] as CSR [R, C] (rows sorted unique)."""
        crow, col, val = block.crow_indices(), block.col_indices(), block.values()
        start = crow[rows].long()
        counts = crow[rows + 1].long() - start
        new_crow = torch.zeros(rows.numel() + 1, dtype=torch.int64, device=rows.device)
        new_crow[1:] = torch.cumsum(counts, 0)
        # entry j of output row r sits at start[r] + j: shift arange(total) by (start - new_crow) per row
        index = torch.arange(int(new_crow[-1]), device=rows.device) + torch.repeat_interleave(start - new_crow[:-1], counts)
        return torch.sparse_csr_tensor(
            new_crow.to(crow.dtype), col.index_select(0, index), val.index_select(0, index), (rows.numel(), block.shape[1])
        )

    @staticmethod
    def _select_cols(block: Tensor, cols: Tensor) -> Tensor:
        """block[:, cols] as CSR [rows, len(cols)] (cols sorted unique), without sorting: a column
        filter over the entries keeps CSR order."""
        crow, col, val = block.crow_indices(), block.col_indices(), block.values()
        position = torch.full((block.shape[1],), -1, dtype=col.dtype, device=cols.device)
        position[cols] = torch.arange(cols.numel(), dtype=col.dtype, device=cols.device)
        new_col = position.index_select(0, col)
        keep = new_col >= 0
        kept_before = torch.zeros(keep.numel() + 1, dtype=crow.dtype, device=cols.device)
        torch.cumsum(keep, 0, dtype=crow.dtype, out=kept_before[1:])
        kept = keep.nonzero().squeeze(1)  # once, for both gathers (a boolean index would find it twice)
        return torch.sparse_csr_tensor(
            kept_before.index_select(0, crow), new_col.index_select(0, kept), val.index_select(0, kept), (block.shape[0], cols.numel())
        )

    def rows_matmul(self, rows: Tensor, x: Tensor) -> Tensor:
        """``(A @ x)[rows]``: [N, D] -> [R, D], rows sorted unique node ids (users before items)."""
        if self.rest is not None:
            return self.matmul(x)[rows]
        u = self.num_users
        split = int(torch.searchsorted(rows, u))
        x = x.contiguous()
        out = x.new_empty(rows.numel(), x.shape[1])
        self._product_into(out[:split], self._select_rows(self.user_item, rows[:split]), x[u:])
        self._product_into(out[split:], self._select_rows(self.item_user, rows[split:] - u), x[:u])
        return out

    def cols_matmul(self, rows: Tensor, g: Tensor) -> Tensor:
        """``A[:, rows] @ g`` = ``A @ S^T g`` (``g`` [R, D] placed at ``rows``): [R, D] -> [N, D]."""
        u = self.num_users
        if self.rest is not None:
            full = g.new_zeros(self.user_item.shape[0] + self.item_user.shape[0], g.shape[1])
            return self.matmul(full.index_copy_(0, rows, g))
        split = int(torch.searchsorted(rows, u))
        g = g.contiguous()
        out = g.new_empty(self.user_item.shape[0] + self.item_user.shape[0], g.shape[1])
        # users receive from the batch's item rows through R, items from its user rows through R^T
        self._product_into(out[:u], self._select_cols(self.user_item, rows[split:] - u), g[split:])
        self._product_into(out[u:], self._select_cols(self.item_user, rows[:split]), g[:split])
        return out


def operator_cache(graph: TrainGraph) -> dict:
    """Operators derived from a graph (block adjacency, the zoo's normalisations), built once per graph
    object: the task keeps one graph per device, SGL's views are new objects every epoch."""
    return graph.__dict__.setdefault("_zoo_operators", {})


def block_adjacency(graph: TrainGraph) -> BlockAdjacency:
    """``graph.norm_adj`` as a ``BlockAdjacency``, built once per graph object."""
    cache = operator_cache(graph)
    if "block_adjacency" not in cache:
        cache["block_adjacency"] = BlockAdjacency(graph.norm_adj, graph.num_users)
    return cache["block_adjacency"]


def _matmul(adj: Tensor | BlockAdjacency, x: Tensor) -> Tensor:
    return adj.matmul(x) if isinstance(adj, BlockAdjacency) else torch.sparse.mm(adj, x)


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ X`` for a symmetric sparse ``A``; the backward is ``A @ G`` again.

    torch.sparse.mm's own backward builds ``A^T`` (a CSR transpose) on every call; for the symmetric
    normalised adjacency that is the same matrix, so we reuse it. See experiments/speed for numbers.
    """

    @staticmethod
    def forward(ctx, adj: Tensor | BlockAdjacency, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return _matmul(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, _matmul(ctx.adj, grad)


def symmetric_spmm(adj: Tensor | BlockAdjacency, x: Tensor) -> Tensor:
    """[N, N] symmetric sparse (CSR or ``BlockAdjacency``) times [N, D] dense -> [N, D], differentiable
    in ``x``.

    Runs in the adjacency's dtype (fp32) even under autocast: CPU autocast would cast the product to
    bf16, which the CPU sparse kernels lack, and a bf16 sum over a hub's neighbours loses precision.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _SymmetricSpMM.apply(adj, x.to(adj.dtype))


class _LayerMeanPropagation(torch.autograd.Function):
    """``mean_{k=k0..K} A^k X`` for a symmetric sparse ``A`` in one autograd node.

    Forward: K products, summed in place. Backward: the gradient of the mean is
    ``sum_{k=k0..K} A^k G / n`` (A symmetric), evaluated Horner-style with K products again:
    ``R = G; R = G + A R`` (K - k0 times), then ``A R`` k0 times. Same product count as the layer-by-layer
    graph, but none of its per-layer autograd nodes, stacking and sums (with ``BlockAdjacency``: 1.4x
    faster forward + backward on Gowalla, 1.03x on MovieLens-100K; experiments/speed/kernels.py).
    """

    @staticmethod
    def forward(ctx, adj: Tensor | BlockAdjacency, x: Tensor, num_layers: int, first: int, rows: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.adj, ctx.num_layers, ctx.first, ctx.rows = adj, num_layers, first, rows
        if rows is not None:  # only these rows of the mean: the last product restricted to them
            assert isinstance(adj, BlockAdjacency)
            out = x.index_select(0, rows) if first == 0 else None
            e = x
            for _ in range(num_layers - 1):
                e = _matmul(adj, e)
                out = e.index_select(0, rows) if out is None else out.add_(e.index_select(0, rows))
            last = adj.rows_matmul(rows, e)
            return (last if out is None else out.add_(last)).div_(num_layers + 1 - first)
        out = x.clone() if first == 0 else None
        e = x
        for _ in range(num_layers):
            e = _matmul(adj, e)
            out = e.clone() if out is None else out.add_(e)
        assert out is not None
        return out.div_(num_layers + 1 - first)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        adj, num_layers, first, rows = ctx.adj, ctx.num_layers, ctx.first, ctx.rows
        g = grad / (num_layers + 1 - first)
        if rows is not None:
            # sum_k A^k h with h = S^T g (g placed at rows): the first product reads only g's rows.
            # Horner as below, T_0 = h, T_j = h + A T_{j-1}; A T_0 is the restricted product.
            r = adj.cols_matmul(rows, g)  # A h
            if num_layers == first:  # K = 1 without the ego layer: the mean is A h
                return None, r, None, None, None
            r.index_add_(0, rows, g)  # T_1
            for _ in range(num_layers - first - 1):
                r = _matmul(adj, r).index_add_(0, rows, g)
            for _ in range(first):
                r = _matmul(adj, r)
            return None, r, None, None, None
        r = g
        for _ in range(num_layers - first):
            r = _matmul(adj, r).add_(g)
        for _ in range(first):
            r = _matmul(adj, r)
        return None, r, None, None, None


def propagate_layer_mean(
    adj: Tensor | BlockAdjacency, x: Tensor, num_layers: int, include_ego: bool = True, rows: Tensor | None = None
) -> Tensor:
    """LightGCN's readout in one step: ``mean_{k} A^k x`` over k = 0..K (``include_ego``) or 1..K.

    adj: symmetric sparse CSR or ``BlockAdjacency`` [N, N]; x: [N, D] -> [N, D]. Equal to propagating layer by layer and
    averaging (tests/ops/test_sparse.py checks values and gradients). fp32 under autocast, as
    ``symmetric_spmm``.

    ``rows`` (sorted unique node ids [R], ``BlockAdjacency`` only): return just those rows, [R, D], with
    the last product restricted to them and the backward's first product to the matching columns
    (what a BPR batch needs; see ``models.gnn.lightgcn.LightGCN.embed_rows`` for when it pays).
    """
    if rows is not None and not isinstance(adj, BlockAdjacency):
        return propagate_layer_mean(adj, x, num_layers, include_ego)[rows]
    if num_layers < 1:
        if not include_ego:
            raise ValueError("a readout without the ego layer needs num_layers >= 1")
        return x if rows is None else x[rows]
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _LayerMeanPropagation.apply(adj, x.to(adj.dtype), num_layers, 0 if include_ego else 1, rows)
