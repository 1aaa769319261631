"""MIND impression metrics against a brute-force reference.

The reference is the official scorer's code path (``evaluate.py`` of msnews/MIND: sklearn's
``roc_auc_score``, ``mrr_score`` and ``ndcg_score`` on one impression) written out here, applied to
every ordering of tied candidates and averaged; without ties it is the official value itself.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from graphrec_lab.evaluation.impressions import ImpressionEvaluator, impression_metrics, metric_names


# ------------------------------------------------------------------ the official definitions
def _dcg(y_true: np.ndarray, y_score: np.ndarray, k: int) -> float:
    order = np.argsort(y_score)[::-1]
    y = np.take(y_true, order[:k])
    return float(np.sum((2**y - 1) / np.log2(np.arange(len(y)) + 2)))


def _ndcg(y_true, y_score, k):
    return _dcg(y_true, y_score, k) / _dcg(y_true, y_true, k)


def _mrr(y_true, y_score):
    order = np.argsort(y_score)[::-1]
    y = np.take(y_true, order)
    return float(np.sum(y / (np.arange(len(y)) + 1)) / np.sum(y))


def _auc_pairs(y_true, y_score):
    """AUC by counting pairs (what roc_auc_score computes, ties half a point)."""
    pos = y_score[y_true == 1]
    neg = y_score[y_true == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def brute_force(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """Official MRR and nDCG averaged over every order of the tied candidates; pairwise AUC."""
    n = y_true.size
    vals = []
    for perm in itertools.permutations(range(n)):
        tiebreak = np.empty(n)
        tiebreak[list(perm)] = np.arange(n) * 1e-6  # reorders only within groups of equal score
        s = y_score + tiebreak
        vals.append((_mrr(y_true, s), _ndcg(y_true, s, 5), _ndcg(y_true, s, 10)))
    mrr, n5, n10 = np.mean(vals, 0)
    return {"auc": _auc_pairs(y_true, y_score), "mrr": mrr, "ndcg@5": n5, "ndcg@10": n10}


def _random_impressions(rng: np.random.Generator, count: int, max_len: int = 6, levels: int = 3):
    out = []
    while len(out) < count:
        n = int(rng.integers(2, max_len + 1))
        y = rng.integers(0, 2, n)
        if 0 < y.sum() < n:
            out.append((y, rng.integers(0, levels, n).astype(float)))  # few levels: many ties
    return out


# ------------------------------------------------------------------ per impression
def test_matches_brute_force_with_ties() -> None:
    rng = np.random.default_rng(0)
    for y, s in _random_impressions(rng, 80):
        got = impression_metrics(torch.tensor(s)[None], torch.tensor(y)[None])
        ref = brute_force(y, s)
        for name in metric_names():
            assert got[name].item() == pytest.approx(ref[name], abs=1e-12), (name, y, s)


def test_equals_official_script_without_ties() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 2, n)
        if not 0 < y.sum() < n:
            continue
        s = rng.permutation(n).astype(float)  # distinct scores
        got = impression_metrics(torch.tensor(s)[None], torch.tensor(y)[None])
        assert got["mrr"].item() == pytest.approx(_mrr(y, s), abs=1e-12)
        assert got["ndcg@5"].item() == pytest.approx(_ndcg(y, s, 5), abs=1e-12)
        assert got["ndcg@10"].item() == pytest.approx(_ndcg(y, s, 10), abs=1e-12)
        assert got["auc"].item() == pytest.approx(_auc_pairs(y, s), abs=1e-12)


def test_auc_is_sklearns_roc_auc_score() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    for y, s in _random_impressions(rng, 100, max_len=30, levels=5):
        got = impression_metrics(torch.tensor(s)[None], torch.tensor(y)[None])["auc"].item()
        assert got == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)


def test_all_tied_impression_is_chance_level() -> None:
    y = np.array([1, 0, 0, 1, 0])
    got = impression_metrics(torch.zeros(1, 5), torch.tensor(y)[None])
    assert got["auc"].item() == 0.5
    # Every rank equally likely for each click: MRR = mean of 1/r over r=1..5.
    assert got["mrr"].item() == pytest.approx(sum(1 / r for r in range(1, 6)) / 5)
    assert got["ndcg@10"].item() == pytest.approx(brute_force(y, np.zeros(5))["ndcg@10"])


def test_single_candidate_and_single_class_impressions_are_undefined_not_wrong() -> None:
    scores = torch.tensor([[0.3, 0.0, 0.0], [0.1, 0.9, 0.0], [0.5, 0.2, 0.7]])
    labels = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 1]])
    mask = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    got = impression_metrics(scores, labels, mask)
    assert torch.isnan(got["auc"]).all()  # one candidate / no click / all clicked: roc_auc_score raises
    assert got["mrr"][0].item() == 1.0 and got["ndcg@10"][0].item() == 1.0  # the single click is first
    assert torch.isnan(got["mrr"][1]) and torch.isnan(got["ndcg@5"][1])  # no click: 0/0 in the script
    # All clicked: nDCG is 1; the script's MRR averages 1/r over every click's rank.
    assert got["mrr"][2].item() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3) and got["ndcg@5"][2].item() == pytest.approx(1.0)
    assert got["num_pos"].tolist() == [1, 0, 3] and got["num_neg"].tolist() == [0, 2, 0]


def test_padding_and_batch_layout_do_not_change_values() -> None:
    rng = np.random.default_rng(3)
    imps = _random_impressions(rng, 12, max_len=9)
    width = max(y.size for y, _ in imps) + 3
    scores = torch.full((len(imps), width), 123.0)  # padding scores that would rank first if counted
    labels = torch.ones(len(imps), width, dtype=torch.long)  # ... and that would count as clicks
    mask = torch.zeros(len(imps), width, dtype=torch.bool)
    for r, (y, s) in enumerate(imps):
        scores[r, : y.size] = torch.tensor(s)
        labels[r, : y.size] = torch.tensor(y)
        mask[r, : y.size] = True
    batched = impression_metrics(scores, labels, mask)
    for r, (y, s) in enumerate(imps):
        single = impression_metrics(torch.tensor(s)[None], torch.tensor(y)[None])
        for name in metric_names():
            assert batched[name][r].item() == pytest.approx(single[name].item(), abs=1e-12)


def test_rejects_nan_scores_and_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="NaN"):
        impression_metrics(torch.tensor([[0.1, float("nan")]]), torch.tensor([[1, 0]]))
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        impression_metrics(torch.zeros(2, 3), torch.zeros(2, 4))


# ------------------------------------------------------------------ the evaluator
def _evaluate(imps, single_class: str = "skip", batch: int = 4) -> ImpressionEvaluator:
    ev = ImpressionEvaluator(single_class=single_class)
    for start in range(0, len(imps), batch):
        chunk = imps[start : start + batch]
        width = max(y.size for y, _ in chunk)
        scores = torch.zeros(len(chunk), width)
        labels = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.bool)
        for r, (y, s) in enumerate(chunk):
            scores[r, : y.size], labels[r, : y.size], mask[r, : y.size] = torch.tensor(s), torch.tensor(y), True
        ev.update(scores, labels, mask)
    return ev


def test_evaluator_is_the_mean_of_per_impression_values_and_skips_single_class() -> None:
    rng = np.random.default_rng(4)
    good = _random_impressions(rng, 20)
    bad = [(np.array([1]), np.array([0.2])), (np.array([0, 0, 0]), np.array([1.0, 2.0, 3.0])), (np.array([1, 1]), np.array([0.0, 0.0]))]
    imps = good[:7] + bad[:2] + good[7:] + bad[2:]
    ev = _evaluate(imps)
    out = ev.compute()
    refs = [brute_force(y, s) for y, s in good]
    for name in metric_names():
        assert out[name].item() == pytest.approx(np.mean([r[name] for r in refs]), abs=1e-12)
    assert ev.num_impressions == len(good) and ev.skipped == len(bad)
    # Batch size does not matter.
    again = _evaluate(imps, batch=5).compute()
    for name in metric_names():
        assert again[name].item() == pytest.approx(out[name].item(), abs=1e-12)


def test_partial_policy_keeps_all_clicked_impressions_in_mrr_and_ndcg_only() -> None:
    rng = np.random.default_rng(5)
    good = _random_impressions(rng, 10)
    all_clicked = [(np.array([1, 1, 1]), np.array([0.3, 0.1, 0.2])), (np.array([1]), np.array([0.0]))]
    no_click = [(np.array([0, 0]), np.array([0.3, 0.1]))]
    out = _evaluate(good + all_clicked + no_click, single_class="partial").compute()
    refs = [brute_force(y, s) for y, s in good]
    assert out["auc"].item() == pytest.approx(np.mean([r["auc"] for r in refs]))
    all_clicked_values = {"mrr": [(1 + 1 / 2 + 1 / 3) / 3, 1.0], "ndcg@5": [1.0, 1.0], "ndcg@10": [1.0, 1.0]}
    for name, extra in all_clicked_values.items():
        expected = (sum(r[name] for r in refs) + sum(extra)) / (len(refs) + len(extra))
        assert out[name].item() == pytest.approx(expected)


def test_evaluator_names_and_empty_compute() -> None:
    ev = ImpressionEvaluator(ks=(5, 10))
    assert ev.metric_names == ["auc", "mrr", "ndcg@5", "ndcg@10"]
    assert set(ev.metrics) == set(ev.metric_names)
    assert all(math.isnan(v.item()) for v in ev.compute().values())
    with pytest.raises(ValueError, match="single_class"):
        ImpressionEvaluator(single_class="ignore")
