"""Item ID rows carried between domains through item text (``init_from_ids=text``).

A warm start on another dataset cannot load an ID table row for row: item 7 of the source is not
item 7 of the target. With both domains' item texts, each target item's row starts from the rows of
the source items whose text is most like its own. Similarity is the cosine of TF-IDF vectors
(scikit-learn's ``TfidfVectorizer``, sublinear term frequency, fitted on both domains' texts, which
are item metadata, not interactions):

* a target item whose text also occurs in the source (cosine >= ``EXACT``) takes that item's row
  (the mean row where several source items among its ``k`` neighbours have that text);
* any other target item takes the mean of its ``k`` most similar source items' rows, weighted by
  their cosines;
* a target item sharing no term with any source item keeps its fresh initialisation.

The cosines are computed in chunks of target items ([chunk, I_source] dense at a time), so memory
stays bounded for large catalogues.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

EXACT = 0.999  # TF-IDF cosine at which two texts count as the same item
CHUNK = 2048  # target items per dense similarity block


@dataclass
class MappedRows:
    """What ``map_item_rows`` did to one table: target items mapped (of ``items``), of which
    ``exact`` took a same-text source row; ``mean_top1``: mean best cosine over all target items."""

    table: str
    items: int
    mapped: int
    exact: int
    mean_top1: float

    def summary(self) -> dict[str, object]:
        return {"table": self.table, "items": self.items, "mapped": self.mapped, "exact": self.exact,
                "mean_top1": round(self.mean_top1, 4)}  # fmt: skip


def text_neighbours(source_texts: list[str], target_texts: list[str], k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` most similar source items of every target item: ids [I_t, k] (long) and TF-IDF
    cosines [I_t, k] (float, descending; 0 where fewer than k source items share a term)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if k < 1:
        raise ValueError(f"init_from_neighbours={k}: must be >= 1")
    k = min(k, len(source_texts))
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit([*source_texts, *target_texts])
    source = vectorizer.transform(source_texts).T.tocsr()  # [V, I_s], columns L2-normalised
    target = vectorizer.transform(target_texts).tocsr()  # [I_t, V]
    ids, sims = [], []
    for start in range(0, target.shape[0], CHUNK):
        block = torch.from_numpy((target[start : start + CHUNK] @ source).toarray()).float()  # [c, I_s]
        top = torch.topk(block, k, dim=1)  # ties: torch's order; equal cosines weigh equally anyway
        ids.append(top.indices)
        sims.append(top.values)
    return torch.cat(ids), torch.cat(sims)


def map_item_rows(source_rows: Tensor, target_rows: Tensor, ids: Tensor, sims: Tensor, table: str) -> tuple[Tensor, MappedRows]:
    """``target_rows`` [I_t, D] with rows replaced from ``source_rows`` [I_s, D] through the
    neighbours ``ids``/``sims`` [I_t, k] of ``text_neighbours`` (module docstring); a new tensor."""
    exact = sims[:, 0] >= EXACT
    weights = torch.where(exact.unsqueeze(1), (sims >= EXACT).float(), sims.clamp(min=0.0))  # [I_t, k]
    total = weights.sum(1)
    mapped = total > 0
    mean = (weights.unsqueeze(-1) * source_rows[ids].to(torch.float32)).sum(1) / total.clamp(min=1e-12).unsqueeze(-1)
    out = torch.where(mapped.unsqueeze(-1), mean.to(target_rows.dtype), target_rows)
    report = MappedRows(table, items=target_rows.shape[0], mapped=int(mapped.sum()), exact=int(exact.sum()),
                        mean_top1=float(sims[:, 0].mean()) if sims.numel() else 0.0)  # fmt: skip
    return out, report
