"""Deletion fidelity: do the interactions an explanation ranks first matter most to the model?

For a seeded sample of users, one item of each user's top-k list is the target. For every
attribution method, the m most attributed training interactions of the user are removed from the
training graph, the model is re-run on that graph with its trained weights (no retraining), and the
target's rank among the user's candidate items (the original training items stay excluded; ties: lower
item id first) is recomputed. The rank drop is compared with removing m random interactions and the
m interactions with the most popular items, m in {1, 3, 5}. The drop of the target's score s(u, i)
is compared the same way: ranks tie often (a top-10 item seldom moves when a few of a long history
are removed), scores do not. Where the model has a PyG message-passing counterpart, PyG's
fidelity+/- of the same m interactions is reported too (``explain.pyg_fidelity``: does masking them
out, or keeping only them, flip the target's place above the first item outside the top-k).

Methods: ``exact`` (the LightGCN-family decomposition), ``gnnexplainer``, ``captum_ig``, ``saliency``
(``explain.pyg``; edge masks summed over both directions); baselines ``random`` and ``popular``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean, median

import torch
from torch import Tensor

from graphrec_lab.data.train_graph import TrainGraph
from graphrec_lab.explain.exact import decompose
from graphrec_lab.explain.pyg import METHODS, explain_pair, supports
from graphrec_lab.explain.pyg_fidelity import TopKFidelity
from graphrec_lab.inference.foldin import is_linear_propagation
from graphrec_lab.inference.recommend import recommend
from graphrec_lab.inference.run import InferenceError, LoadedRun

BASELINES = ("random", "popular")


@dataclass
class FidelityRow:
    method: str
    m: int
    pairs: int
    mean_drop: float  # mean rank drop of the target (positive: it fell)
    median_drop: float
    beats_random: float  # share of pairs whose drop exceeds the random removal's
    beats_popular: float
    beats_both: float
    seconds_per_explanation: float
    mean_score_drop: float = 0.0  # mean of s(u, i) before minus after the removal
    score_beats_both: float = 0.0  # share of pairs whose score drop exceeds both baselines' (no ties at 0)
    fid_plus: float | None = None  # PyG fidelity+ (mean over pairs); None where the model has no PyG counterpart
    fid_minus: float | None = None  # PyG fidelity-
    fid_pairs: int = 0  # pairs PyG's fidelity was measured on (the first of the sample)


@dataclass
class FidelityResult:
    model: str
    dataset: str
    run_dir: str
    k: int
    rows: list[FidelityRow]

    def format(self) -> str:
        lines = [
            f"deletion fidelity: {self.model} on {self.dataset} ({self.rows[0].pairs if self.rows else 0} (user, top-{self.k} item) pairs)",
            "| method | m | mean rank drop | median | > random | > popular | > both | mean score drop | score drop > both "
            "| PyG fid+ | PyG fid- | s / explanation |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]

        def opt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f}"

        for r in self.rows:
            lines.append(
                f"| {r.method} | {r.m} | {r.mean_drop:.1f} | {r.median_drop:.1f} | {r.beats_random:.2f} | {r.beats_popular:.2f} | "
                f"{r.beats_both:.2f} | {r.mean_score_drop:.4f} | {r.score_beats_both:.2f} | {opt(r.fid_plus)} | {opt(r.fid_minus)} | "
                f"{r.seconds_per_explanation:.3f} |"
            )
        return "\n".join(lines)


def write_fidelity(result: FidelityResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".md":
        path.write_text(result.format() + "\n")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"model": result.model, "dataset": result.dataset, **asdict(r)}) + "\n" for r in result.rows))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(asdict(result.rows[0])))
            writer.writeheader()
            writer.writerows(asdict(r) for r in result.rows)
    else:
        raise InferenceError(f"--out {path}: expected .md, .csv or .jsonl")
    return path


def rank_of(scores: Tensor, target: int, exclude: Tensor) -> int:
    """1-based rank of ``target`` in ``scores`` [I] with ``exclude`` masked, ties to the lower id."""
    scores = scores.clone()
    scores[exclude] = float("-inf")
    s = scores[target]
    ahead = (scores > s).sum() + ((scores == s) & (torch.arange(scores.numel()) < target)).sum()
    return int(ahead) + 1


def _scores_without(run: LoadedRun, user: int, removed: Tensor) -> Tensor:
    """The user's scores over all items [I] from the trained model on the training graph minus the
    user's interactions with ``removed`` (dense item ids)."""
    train = run.data.train
    drop = (train.users == user) & torch.isin(train.items, removed)
    graph = TrainGraph.from_edges(
        train.users[~drop], train.items[~drop], run.data.num_users, run.data.num_items,
        bool(getattr(run.datamodule, "isolated_self_loops", False)),
    )
    with torch.no_grad():
        users, items = run.model(graph)
    return items @ users[user]


def _attributions(run: LoadedRun, method: str, user: int, target: int, history: Tensor, epochs: int, seed: int) -> Tensor:
    """One weight per item of ``history`` [n] (dense ids): how much that interaction explains s(user, target)."""
    raw_user, raw_item = run.user_ids[user], run.item_ids[target]
    weight = {int(j): 0.0 for j in history}
    if method == "exact":
        for c in decompose(run, raw_user, raw_item).interactions:
            if c.item in run._item_index:
                weight[run._item_index[c.item]] = c.total
    else:
        for e in explain_pair(run, raw_user, raw_item, method, epochs=epochs, seed=seed).edges:
            if e.of_user:
                weight[run._item_index[e.item]] = e.weight
    return torch.tensor([weight[int(j)] for j in history], dtype=torch.float64)


def deletion_fidelity(
    run: LoadedRun,
    num_pairs: int = 50,
    ms: tuple[int, ...] = (1, 3, 5),
    methods: list[str] | None = None,
    k: int = 10,
    seed: int = 0,
    epochs: int = 100,
    pyg_pairs: int = 20,
) -> FidelityResult:
    """The deletion-fidelity table (module docstring) over ``num_pairs`` sampled users; PyG's
    fidelity+/- over the first ``pyg_pairs`` of them (0: none) where ``explain.pyg`` covers the model
    (two forward passes over the pair's computation subgraph per removal: on ml-100k that is the whole
    graph, ~0.3 s each on a 2-core CPU)."""
    if methods is None:
        methods = ["exact"] if is_linear_propagation(run.model) else ["gnnexplainer", "captum_ig"]
    unknown = sorted(set(methods) - {"exact", *METHODS})
    if unknown:
        raise InferenceError(f"--methods {unknown}: expected exact or one of {METHODS}")
    if any(m in METHODS for m in methods) and not supports(run.model):
        raise InferenceError(f"{run.model_name}: the PyG explainers do not cover this model")
    gen = torch.Generator().manual_seed(seed)
    degree = torch.bincount(run.data.train.users, minlength=run.data.num_users)
    eligible = torch.nonzero(degree > max(ms)).flatten()  # removing m interactions leaves some history
    if eligible.numel() == 0:
        raise InferenceError(f"no user has more than {max(ms)} training interactions")
    users = eligible[torch.randperm(eligible.numel(), generator=gen)[:num_pairs]].sort().values
    popularity = run.train_graph.item_degree
    user_emb, item_emb = run.embeddings()
    pyg_pairs = pyg_pairs if supports(run.model) else 0

    drops: dict[tuple[str, int], list[int]] = {}
    score_drops: dict[tuple[str, int], list[float]] = {}
    fids: dict[tuple[str, int], list[tuple[float, float]]] = {}
    seconds: dict[str, float] = {m: 0.0 for m in methods}
    for n, u in enumerate(users.tolist()):
        recs = recommend(run, [run.user_ids[u]], k=k + 1)[0]  # the (k+1)-th: the competitor of PyG fidelity
        target = run._item_index[recs[int(torch.randint(min(k, len(recs)), (1,), generator=gen))].item]
        pyg = TopKFidelity(run, u, target, run._item_index[recs[k].item]) if n < pyg_pairs and len(recs) > k else None
        history = run.train_items(u)
        base_scores = item_emb @ user_emb[u]
        base = rank_of(base_scores, target, history)
        orders: dict[str, Tensor] = {
            "random": history[torch.randperm(history.numel(), generator=gen)],
            "popular": history[torch.argsort(popularity[history], descending=True, stable=True)],
        }
        for method in methods:
            t0 = time.perf_counter()
            weights = _attributions(run, method, u, target, history, epochs, seed)
            seconds[method] += time.perf_counter() - t0
            orders[method] = history[torch.argsort(weights, descending=True, stable=True)]
        for name, order in orders.items():
            for m in ms:
                scores = _scores_without(run, u, order[:m])
                drops.setdefault((name, m), []).append(rank_of(scores, target, history) - base)
                score_drops.setdefault((name, m), []).append(float(base_scores[target] - scores[target]))
                if pyg is not None:
                    fids.setdefault((name, m), []).append(pyg(order[:m]))

    rows = []
    for name in [*methods, *BASELINES]:
        for m in ms:
            d = drops[(name, m)]
            rnd, pop = drops[("random", m)], drops[("popular", m)]
            sd, srnd, spop = score_drops[(name, m)], score_drops[("random", m)], score_drops[("popular", m)]
            fid = fids.get((name, m))
            rows.append(FidelityRow(
                name, m, len(d), float(mean(d)), float(median(d)),
                float(mean(a > b for a, b in zip(d, rnd))), float(mean(a > b for a, b in zip(d, pop))),
                float(mean(a > b and a > c for a, b, c in zip(d, rnd, pop))),
                seconds.get(name, 0.0) / max(1, len(users)),
                float(mean(sd)), float(mean(a > b and a > c for a, b, c in zip(sd, srnd, spop))),
                float(mean(f[0] for f in fid)) if fid else None, float(mean(f[1] for f in fid)) if fid else None,
                len(fid) if fid else 0,
            ))  # fmt: skip
    return FidelityResult(run.model_name, run.data.name, str(run.run_dir), k, rows)
