"""Membership-inference audit of a finished run: was the interaction (u, i) in the training set?

Members are the run's true training interactions (what edge-DP and DP-SGD protect); non-members are
either the users' held-out test interactions (``nonmembers="test"``: the same distribution, the
harder and more meaningful test) or random items the user never interacted with
(``nonmembers="random"``). Both sides are subsampled to the same size with the audit's seed.

Attacks:

``threshold``
    A score-threshold attack (Yeom et al., CSF 2018, on scores instead of losses): the model's
    score of (u, i) (``signal="score"``) or the item's percentile in the user's full ranking
    (``signal="rank"``, insensitive to per-user score scale) is the membership score.
``shadow``
    A shadow-model attack (Shokri et al., S&P 2017): shadow models with the run's model, task and
    data settings (edge-DP mechanism included) are trained on random halves of the population
    (train + test interactions), so their membership is known; a logistic regression on
    (score, rank percentile) learns members from non-members on the shadows and scores the target.

Both report the attack's ROC AUC and its TPR at 1% and 0.1% FPR (``sklearn.metrics``); TPR at a
low FPR is what matters for the worst-case users (Carlini et al., S&P 2022). With ``n`` non-members
the smallest FPR that can be resolved is ``1 / n``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from graphrec_lab.data.graph import EdgeSet, InteractionGraph
from graphrec_lab.models.scorers import scorer_kind
from graphrec_lab.privacy.edge_dp import EdgeDPError
from graphrec_lab.tracking.results import ResultStore

NONMEMBERS = ("test", "random")
SIGNALS = ("score", "rank")
LOW_FPRS = (0.01, 0.001)


class AuditError(ValueError):
    """A run that cannot be audited, or a bad audit option (the message says which)."""


# ---------------------------------------------------------------------------------------- loading
@dataclass
class FinishedRun:
    """What the audit needs of a finished run: its record, config, data and trained model."""

    run_dir: Path
    record: dict[str, Any]
    cfg: DictConfig
    datamodule: Any
    model: torch.nn.Module

    @property
    def graph(self):
        return self.datamodule.load_graph()


def find_record(run_dir: Path, results: str | Path | None = None) -> dict[str, Any]:
    """The result record of ``run_dir`` (``<paths.root>/runs/<name>/<run id>``) in ``results``
    (default ``<paths.root>/results.jsonl``)."""
    store = Path(results) if results is not None else run_dir.parents[2] / "results.jsonl"
    if not store.is_file():
        raise AuditError(f"{run_dir}: no result store at {store} (pass --results <paths.results of the run>)")
    want = run_dir.resolve()
    for record in reversed(ResultStore(store).read()):
        path = record.get("paths", {}).get("run_dir")
        if path is not None and Path(path).resolve() == want:
            return record
    raise AuditError(f"{run_dir}: no record of this run in {store}")


def load_finished_run(run_dir: str | Path, results: str | Path | None = None) -> FinishedRun:
    """Rebuild the data module and the selected checkpoint's model of a finished run.

    The data module is rebuilt from the record's resolved config (same split, same edge-DP
    release: both are seeded), and the model's weights come from ``paths.checkpoint``.
    """
    from hydra.utils import instantiate

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AuditError(f"{run_dir}: no such run directory")
    record = find_record(run_dir, results)
    cfg = OmegaConf.create(record["config"])
    if cfg.get("text") is not None:
        raise AuditError(f"{run_dir}: runs with text features (text={cfg.text.get('_target_')}) are not supported by the audit yet")
    scorer = scorer_kind(cfg.task.get("scorer"))
    if scorer != "dot":
        raise AuditError(f"{run_dir}: trained with task.scorer.kind={scorer}; the audit's signals are dot-product scores")
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    graph = datamodule.load_graph()
    model = instantiate(cfg.model, num_users=graph.num_users, num_items=graph.num_items)
    ckpt = record.get("paths", {}).get("checkpoint")
    if ckpt:
        if not Path(ckpt).is_file():
            raise AuditError(f"{run_dir}: checkpoint {ckpt} of the record is missing")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        model_state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        model.load_state_dict(model_state)
    elif any(p.requires_grad for p in model.parameters()):
        raise AuditError(f"{run_dir}: the record has no checkpoint of its trained model (paths.checkpoint is null)")
    model.eval()
    return FinishedRun(run_dir, record, cfg, datamodule, model)


# ---------------------------------------------------------------------------------------- signals
@torch.no_grad()
def embeddings(model: torch.nn.Module, train_graph: Any) -> tuple[Tensor, Tensor]:
    """Final user [U, D] and item [I, D] embeddings (scores are their dot products)."""
    model.eval()
    user_emb, item_emb = model(train_graph)
    return user_emb.float(), item_emb.float()


@torch.no_grad()
def pair_signals(user_emb: Tensor, item_emb: Tensor, users: Tensor, items: Tensor) -> dict[str, Tensor]:
    """Per pair [P]: ``score`` (dot product) and ``rank`` (share of items the user's ranking puts
    strictly below the item, in [0, 1]; 1 = the user's top item)."""
    scores = (user_emb[users] * item_emb[items]).sum(-1)
    rank = torch.empty_like(scores)
    chunk = max(1, (1 << 24) // max(item_emb.shape[0], 1))
    for start in range(0, users.numel(), chunk):
        sl = slice(start, start + chunk)
        rows = user_emb[users[sl]] @ item_emb.T  # [c, I]
        rank[sl] = (rows < scores[sl, None]).float().mean(1)
    return {"score": scores, "rank": rank}


def attack_metrics(labels: np.ndarray, signal: np.ndarray) -> dict[str, float]:
    """ROC AUC and TPR at 1% / 0.1% FPR of a membership score (higher = member)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    labels, signal = np.asarray(labels), np.asarray(signal, dtype=np.float64)
    if not np.isfinite(signal).all():
        raise AuditError(f"{int((~np.isfinite(signal)).sum())} membership scores are NaN or infinite (a diverged model?)")
    fpr, tpr, _ = roc_curve(labels, signal)
    out = {"auc": float(roc_auc_score(labels, signal))}
    for target in LOW_FPRS:
        ok = fpr <= target
        out[f"tpr@{target:g}fpr"] = float(tpr[ok].max()) if ok.any() else 0.0
    return out


# ---------------------------------------------------------------------------------------- pairs
def _unique_pairs(users: Tensor, items: Tensor, num_items: int) -> np.ndarray:
    return np.unique(users.numpy().astype(np.int64) * num_items + items.numpy().astype(np.int64))


def membership_pairs(
    graph: Any, nonmembers: str, max_pairs: int, rng: np.random.Generator
) -> tuple[Tensor, Tensor, np.ndarray]:
    """Balanced (users [P], items [P], labels [P]): training interactions (1) and non-members (0)."""
    if nonmembers not in NONMEMBERS:
        raise AuditError(f"nonmembers={nonmembers!r}: expected one of {list(NONMEMBERS)}")
    n_items = graph.num_items
    members = _unique_pairs(graph.train.users, graph.train.items, n_items)
    if nonmembers == "test":
        others = _unique_pairs(graph.test.users, graph.test.items, n_items)
        n = min(members.size, others.size, max_pairs)
        members = rng.choice(members, n, replace=False)
        others = rng.choice(others, n, replace=False)
    else:
        n = min(members.size, max_pairs)
        members = rng.choice(members, n, replace=False)
        known = np.concatenate([_unique_pairs(s.users, s.items, n_items) for s in (graph.train, graph.val, graph.test)])
        known = np.unique(known)
        users = members // n_items
        others = np.empty(0, dtype=np.int64)
        todo = users
        while todo.size:  # rejection: interactions are sparse, so few rounds
            cand = todo * n_items + rng.integers(0, n_items, todo.size)
            bad = np.isin(cand, known)
            others = np.concatenate([others, cand[~bad]])
            todo = todo[bad]
    if members.size == 0:
        raise AuditError("no member/non-member pairs to audit (empty training or test split)")
    keys = np.concatenate([members, others])
    labels = np.concatenate([np.ones(members.size, dtype=np.int64), np.zeros(others.size, dtype=np.int64)])
    keys_t = torch.from_numpy(keys)
    return keys_t // n_items, keys_t % n_items, labels


# ---------------------------------------------------------------------------------------- attacks
def threshold_attack(
    run: FinishedRun, nonmembers: str = "test", max_pairs: int = 20_000, seed: int = 0
) -> dict[str, Any]:
    """Score- and rank-threshold attacks on ``run``: ``{signal: metrics}`` plus the sample sizes."""
    rng = np.random.default_rng(seed)
    users, items, labels = membership_pairs(run.graph, nonmembers, max_pairs, rng)
    user_emb, item_emb = embeddings(run.model, run.datamodule.train_graph)
    signals = pair_signals(user_emb, item_emb, users, items)
    n_non = int((1 - labels).sum())
    # TPR at an FPR below 1 / n_nonmembers is the TPR at zero false positives.
    out: dict[str, Any] = {"n_members": int(labels.sum()), "n_nonmembers": n_non, "fpr_resolution": 1.0 / n_non}
    for name in SIGNALS:
        out[name] = attack_metrics(labels, signals[name].numpy())
    return out


def _shadow_model(run: FinishedRun, train_keys: np.ndarray, held_keys: np.ndarray, seed: int) -> tuple[Tensor, Tensor]:
    """Train one shadow model like the run's on ``train_keys``; its final user/item embeddings."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    graph = run.graph
    n_items = graph.num_items

    def edges(keys: np.ndarray) -> EdgeSet:
        t = torch.from_numpy(np.sort(keys))
        return EdgeSet(t // n_items, t % n_items)

    shadow_graph = InteractionGraph(graph.num_users, graph.num_items, edges(train_keys), edges(held_keys), edges(held_keys[:0]), name=f"{graph.name}-shadow")
    cfg = run.cfg.copy()
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.graph = shadow_graph  # the data module serves (and, with edge-DP, releases) this graph
    datamodule.setup("fit")
    pl.seed_everything(seed, verbose=False)
    model = instantiate(cfg.model, num_users=graph.num_users, num_items=graph.num_items)
    task = instantiate(cfg.task, model=model, text=None, item_groups=None, _recursive_=False, _convert_="all")
    task.attach_graph(datamodule.train_graph)
    epochs = int(run.record.get("metrics", {}).get("best_epoch", -1)) + 1 or int(cfg.trainer.max_epochs)
    trainer = pl.Trainer(
        max_epochs=max(epochs, 1), accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(task, train_dataloaders=datamodule.train_dataloader())
    return embeddings(model, datamodule.train_graph)


def shadow_attack(
    run: FinishedRun, num_shadows: int = 2, nonmembers: str = "test", max_pairs: int = 20_000, seed: int = 0
) -> dict[str, Any]:
    """Shadow-model attack: a logistic regression on (score, rank) trained on shadow models."""
    from sklearn.linear_model import LogisticRegression

    if num_shadows < 1:
        raise AuditError(f"num_shadows={num_shadows}: expected >= 1")
    rng = np.random.default_rng(seed)
    graph = run.graph
    n_items = graph.num_items
    population = np.unique(
        np.concatenate([_unique_pairs(s.users, s.items, n_items) for s in (graph.train, graph.test)])
    )
    feats, labels = [], []
    for k in range(num_shadows):
        inside = rng.random(population.size) < 0.5
        user_emb, item_emb = _shadow_model(run, population[inside], population[~inside], seed=seed * 1000 + k)
        n = min(int(inside.sum()), int((~inside).sum()), max_pairs)
        keys = np.concatenate([rng.choice(population[inside], n, replace=False), rng.choice(population[~inside], n, replace=False)])
        keys_t = torch.from_numpy(keys)
        sig = pair_signals(user_emb, item_emb, keys_t // n_items, keys_t % n_items)
        feats.append(_features(sig))
        labels.append(np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)]))
    clf = LogisticRegression(max_iter=1000).fit(np.concatenate(feats), np.concatenate(labels))
    users, items, target_labels = membership_pairs(graph, nonmembers, max_pairs, rng)
    user_emb, item_emb = embeddings(run.model, run.datamodule.train_graph)
    target = _features(pair_signals(user_emb, item_emb, users, items))
    out = attack_metrics(target_labels, clf.decision_function(target))
    out.update(num_shadows=num_shadows, n_members=int(target_labels.sum()), n_nonmembers=int((1 - target_labels).sum()))
    return out


def _features(signals: dict[str, Tensor]) -> np.ndarray:
    """[P, 2]: standardised score (scale differs between models) and rank percentile."""
    score = signals["score"].numpy().astype(np.float64)
    score = (score - score.mean()) / (score.std() + 1e-12)
    return np.stack([score, signals["rank"].numpy()], axis=1)


# ---------------------------------------------------------------------------------------- entry point
def audit_run(
    run_dir: str | Path,
    results: str | Path | None = None,
    nonmembers: str = "test",
    max_pairs: int = 20_000,
    seed: int = 0,
    shadow: int = 0,
    write: bool = True,
) -> dict[str, Any]:
    """Membership-inference audit of a finished run; also written to ``<run_dir>/audit.json``.

    Returns ``{"run_dir", "config": {privacy settings}, "threshold": {score: {...}, rank: {...}},
    "shadow": {...} (with ``shadow`` > 0 shadow models)}``; metrics are ``auc``, ``tpr@0.01fpr``
    and ``tpr@0.001fpr``.
    """
    if max_pairs < 1:
        raise AuditError(f"max_pairs={max_pairs}: expected >= 1")
    run = load_finished_run(run_dir, results)
    privacy = OmegaConf.to_container(run.cfg.data.get("privacy"), resolve=True) if run.cfg.data.get("privacy") else None
    report: dict[str, Any] = {
        "run_dir": str(run.run_dir),
        "run_id": run.record.get("run_id"),
        "model": run.cfg.model.get("_target_"),
        "privacy": {"data": privacy, "dp_sgd": run.record.get("metrics", {}).get("privacy/epsilon")},
        "nonmembers": nonmembers,
        "seed": seed,
        "threshold": threshold_attack(run, nonmembers, max_pairs, seed),
    }
    if shadow:
        report["shadow"] = shadow_attack(run, shadow, nonmembers, max_pairs, seed)
    if write:
        path = run.run_dir / "audit.json"
        path.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    return report


def _json_default(value: Any) -> str:
    return str(value)


def format_audit(report: dict[str, Any]) -> str:
    """A plain-text table of an ``audit_run`` report."""
    rows = [(f"threshold/{s}", report["threshold"][s]) for s in SIGNALS]
    if "shadow" in report:
        rows.append(("shadow", report["shadow"]))
    n = report["threshold"]
    lines = [
        f"membership inference on {report['run_dir']} (members: training interactions, non-members: "
        f"{report['nonmembers']}; {n['n_members']} + {n['n_nonmembers']} pairs; smallest resolvable FPR "
        f"{n['fpr_resolution']:.2g})",
        f"{'attack':<18}  {'AUC':>6}  {'TPR@1%FPR':>9}  {'TPR@0.1%FPR':>11}",
    ]
    for name, m in rows:
        lines.append(f"{name:<18}  {m['auc']:6.3f}  {m['tpr@0.01fpr']:9.3f}  {m['tpr@0.001fpr']:11.3f}")
    return "\n".join(lines)


def cli_main(args: list[str]) -> None:
    """``graphrec-lab audit <run dir> [options]``: print the audit table (and write audit.json)."""
    import argparse

    parser = argparse.ArgumentParser(prog="graphrec-lab audit", description="membership-inference audit of a finished run")
    parser.add_argument("run_dir", help="the run's directory (<paths.root>/runs/<name>/<run id>)")
    parser.add_argument("--results", help="its result store (default: <paths.root>/results.jsonl)")
    parser.add_argument("--nonmembers", default="test", choices=NONMEMBERS, help="held-out test interactions or random non-interactions")
    parser.add_argument("--max-pairs", type=int, default=20_000, help="members (and as many non-members) sampled at most")
    parser.add_argument("--shadow", type=int, default=0, help="shadow models to train for the shadow-model attack (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    ns = parser.parse_args(args)
    try:
        report = audit_run(ns.run_dir, ns.results, ns.nonmembers, ns.max_pairs, ns.seed, ns.shadow)
    except (AuditError, EdgeDPError) as exc:
        raise SystemExit(f"{type(exc).__name__}: {exc}") from None
    print(json.dumps(report, indent=2, default=_json_default) if ns.json else format_audit(report))
