"""The ``recommend``, ``export``, ``explain`` and ``ensemble`` verbs of ``graphrec-lab`` (argument parsing and output).

    graphrec-lab recommend <run> --user U [-k 20] [--exclude-val] [--index DIR]
    graphrec-lab recommend <run> --users-file users.txt --out recs.csv|recs.jsonl
    graphrec-lab recommend <run> --history I1 I2 ...        a new user, folded in without retraining
                                  (sequential runs: the next items after each user's sequence or the history)
    graphrec-lab export <run> [--out DIR] [--index hnsw|flat|none] [-k 20] [--queries 1000]
    graphrec-lab explain <run> --user U --item I [--method exact|gnnexplainer|captum_ig|saliency]
                         [--top 10] [--png FILE] [--html FILE]
    graphrec-lab explain <run> --evaluate [--pairs 50] [--methods ...] [--out FILE]
    graphrec-lab ensemble <run> <run> ... [--method zscore|minmax|rrf|borda] [--weights W ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys

from graphrec_lab.inference.run import InferenceError


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs every CPU build it does not find


def _load(path: str):
    from graphrec_lab.inference.run import load_run

    _quiet()
    return load_run(path)


def recommend_main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="graphrec-lab recommend", description="top-K items of a finished run")
    parser.add_argument("run", help="a run directory (<paths.root>/runs/<name>/<id>) or its checkpoint")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", nargs="+", help="raw user id(s)")
    who.add_argument("--users-file", help="raw user ids, one per line (or a CSV's first column)")
    who.add_argument("--history", nargs="+", help="raw item ids of a new user (fold-in, no retraining)")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--exclude-val", action="store_true", help="also exclude validation items (the test protocol)")
    parser.add_argument("--exclude-history", action="store_true",
                        help="sequential runs: leave the history's items out of the list (default: repeats ranked)")
    parser.add_argument("--index", help="an exported FAISS index (graphrec-lab export) instead of exact scoring")
    parser.add_argument("--out", help=".csv or .jsonl file for the lists (default: print them)")
    ns = parser.parse_args(args)
    from graphrec_lab.inference.recommend import (
        format_recommendations,
        read_users_file,
        recommend,
        recommend_new_user,
        recommend_with_index,
        write_recommendations,
    )
    from graphrec_lab.inference.sequence_recommend import is_sequential

    run = _load(ns.run)
    if is_sequential(run):
        lists = _recommend_sequential(run, ns)
    elif ns.exclude_history:
        raise InferenceError("--exclude-history: for sequential runs; a top-K run always excludes training items")
    elif ns.history:
        if ns.index:
            raise InferenceError("--index with --history: fold-in ranks exactly; drop --index")
        lists = [recommend_new_user(run, ns.history, ns.k)]
    else:
        users = ns.user or read_users_file(ns.users_file)
        if ns.index:
            from graphrec_lab.inference.export import load_index

            lists = recommend_with_index(run, users, load_index(ns.index), ns.k, ns.exclude_val)
        else:
            lists = recommend(run, users, ns.k, ns.exclude_val)
    if ns.out:
        path = write_recommendations(lists, ns.out)
        print(f"{sum(len(x) for x in lists)} recommendations for {len(lists)} user(s) written to {path}", file=sys.stderr)
        return
    for recs in lists:
        who_ = recs[0].user if recs else "?"
        print(f"top-{ns.k} for {who_} ({run.model_name}, {run.run_dir}):")
        print(format_recommendations(recs))


def _recommend_sequential(run, ns: argparse.Namespace) -> list:
    """recommend for a sequential run: the next items after each user's sequence or after --history."""
    from graphrec_lab.inference.recommend import read_users_file
    from graphrec_lab.inference.sequence_recommend import recommend_next, recommend_next_for_history

    if ns.index or ns.exclude_val:
        raise InferenceError(f"{'--index' if ns.index else '--exclude-val'}: not for a sequential run, which ranks "
                             "every item after a history (use --exclude-history to leave the history out)")  # fmt: skip
    if ns.history:
        return [recommend_next_for_history(run, ns.history, ns.k, ns.exclude_history)]
    return recommend_next(run, ns.user or read_users_file(ns.users_file), ns.k, ns.exclude_history)


def export_main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="graphrec-lab export", description="embeddings with raw ids, and an ANN index")
    parser.add_argument("run", help="a run directory or its checkpoint")
    parser.add_argument("--out", help="output folder (default: <run dir>/export)")
    parser.add_argument("--index", default="hnsw", choices=["hnsw", "flat", "none"], help="FAISS index kind (needs faiss-cpu)")
    parser.add_argument("-k", type=int, default=20, help="k of the index's recall@k against exact top-k")
    parser.add_argument("--queries", type=int, default=1000, help="users sampled to measure the index")
    ns = parser.parse_args(args)
    from graphrec_lab.inference.export import export_run, faiss_available

    run = _load(ns.run)
    kind = None if ns.index == "none" else ns.index
    if kind is not None and not faiss_available():
        print("faiss is not installed (pip install 'graphrec-lab[serve]'): embeddings only, no index", file=sys.stderr)
        kind = None
    out, report = export_run(run, ns.out or run.run_dir / "export", kind, ns.k, ns.queries)
    print(f"embeddings of {len(run.user_ids)} users and {len(run.item_ids)} items written to {out}")
    if report is not None:
        print(report.format())


def explain_main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="graphrec-lab explain", description="why a run recommends an item to a user")
    parser.add_argument("run", help="a run directory or its checkpoint")
    parser.add_argument("--user", help="raw user id")
    parser.add_argument("--item", help="raw item id (default: the user's top recommendation)")
    parser.add_argument("--method", default=None, help="exact (LightGCN family; the default there), gnnexplainer "
                        "(the default otherwise), captum_ig or saliency")
    parser.add_argument("--epochs", type=int, default=100, help="GNNExplainer's optimisation epochs")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--png", help="write the explanation subgraph as a PNG here")
    parser.add_argument("--html", help="text-fused runs: token attributions of the item's text and of the top "
                        "history items' texts, as an HTML page here")
    parser.add_argument("--evaluate", action="store_true", help="deletion fidelity over sampled (user, top-k item) pairs")
    parser.add_argument("--pairs", type=int, default=50, help="--evaluate: sampled users (one top-k item each)")
    parser.add_argument("--pyg-pairs", type=int, default=20, help="--evaluate: PyG fidelity+/- over the first N pairs (0: none)")
    parser.add_argument("--methods", nargs="+", help="--evaluate: attribution methods (default: exact where it applies, "
                        "else gnnexplainer and captum_ig)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="--evaluate: also write the table (.md) or rows (.csv/.jsonl) here")
    ns = parser.parse_args(args)
    run = _load(ns.run)
    if ns.evaluate:
        from graphrec_lab.explain.fidelity import deletion_fidelity, write_fidelity

        result = deletion_fidelity(run, num_pairs=ns.pairs, methods=ns.methods, seed=ns.seed, epochs=ns.epochs, pyg_pairs=ns.pyg_pairs)
        print(result.format())
        if ns.out:
            print(f"written to {write_fidelity(result, ns.out)}", file=sys.stderr)
        return
    if not ns.user:
        raise InferenceError("explain needs --user (and --item, else the user's top recommendation), or --evaluate")
    item = ns.item
    if item is None:
        from graphrec_lab.inference.recommend import recommend

        item = recommend(run, [ns.user], k=1)[0][0].item
    from graphrec_lab.explain.exact import decompose
    from graphrec_lab.explain.plot import plot_explanation
    from graphrec_lab.explain.pyg import explain_pair
    from graphrec_lab.inference.foldin import is_linear_propagation

    method = ns.method or ("exact" if is_linear_propagation(run.model) else "gnnexplainer")
    if method == "exact":
        result = decompose(run, ns.user, item)
        print(result.format(ns.top))
        weights = [(c.item, c.total) for c in result.interactions[: ns.top]]
    else:
        result = explain_pair(run, ns.user, item, method, epochs=ns.epochs, seed=ns.seed)
        print(result.format(ns.top))
        weights = [(e.item, e.weight) for e in result.edges if e.of_user][: ns.top]
    if ns.html:
        from graphrec_lab.explain.text import to_html, token_attributions

        texts = [token_attributions(run, ns.user, item)]
        texts += [token_attributions(run, ns.user, item, text_item=h) for h, _ in weights[:3]]
        for a in texts:
            print(f"tokens of {a.text_item}: " + ", ".join(f"{t} {w:+.3g}" for t, w in a.top(8)))
        path = to_html(texts, ns.html, title=f"why {item} for {ns.user} ({run.model_name})")
        print(f"token attributions: {path}", file=sys.stderr)
    if ns.png:
        path = plot_explanation(ns.user, item, weights, ns.png, title=f"{method}: why {item} for {ns.user} ({run.model_name})")
        print(f"explanation subgraph: {path}", file=sys.stderr)


def ensemble_main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="graphrec-lab ensemble", description="evaluate the combined scores of finished runs")
    parser.add_argument("runs", nargs="+", help="run directories (or checkpoints) on the same data and split")
    parser.add_argument("--method", default="zscore", help="zscore | minmax (score averaging), rrf | borda (rank aggregation)")
    parser.add_argument("--weights", type=float, nargs="+", help="one weight per run (default: equal)")
    parser.add_argument("--json", help="also write the metrics and settings here")
    ns = parser.parse_args(args)
    import json

    from graphrec_lab.inference.ensemble import evaluate_ensemble

    runs = [_load(path) for path in ns.runs]
    result = evaluate_ensemble(runs, ns.method, ns.weights)
    print(result.format([f"{r.model_name} ({r.run_dir.name})" for r in runs]))
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump({"method": result.method, "weights": result.weights, "runs": result.runs, "metrics": result.metrics}, f, indent=1)


VERBS = {"recommend": recommend_main, "export": export_main, "explain": explain_main, "ensemble": ensemble_main}


def main(verb: str, args: list[str]) -> None:
    """Run one verb; a bad run, id or option ends with a one-line message naming it."""
    try:
        VERBS[verb](args)
    except InferenceError as exc:
        raise SystemExit(f"{type(exc).__name__}: {exc}") from None
