"""Kernels shared by models and training: sparse graph products (``ops.sparse``)."""

from graphrec_lab.ops.sparse import BlockAdjacency, block_adjacency, operator_cache, propagate_layer_mean, symmetric_spmm

__all__ = ["BlockAdjacency", "block_adjacency", "operator_cache", "propagate_layer_mean", "symmetric_spmm"]
