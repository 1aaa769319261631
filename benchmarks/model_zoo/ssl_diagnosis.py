"""Why SGL / SimGCL / XSimGCL with their papers' contrastive weights do not learn on ml-100k.

Trains the model for a few epochs outside Lightning (same data, model, task and objectives as
``run_experiment``) and prints, at the first step of each epoch, the gradient norms that BPR and the
contrastive objective put on the layer-0 embedding table, then each epoch's mean BPR loss.

    python benchmarks/model_zoo/ssl_diagnosis.py simgcl --weight 0.5
    python benchmarks/model_zoo/ssl_diagnosis.py simgcl --weight 0.0005
    python benchmarks/model_zoo/ssl_diagnosis.py sgl --weight 0.01 --data gowalla --steps-per-epoch 40

The model's knobs are Hydra overrides after the options (e.g. ``data.train_batch_size=256``).

``--contrast`` swaps the InfoNCE formulation of the three objectives for this diagnosis only (it
sets each objective's ``contrast``): ``ours`` (two InfoNCEs over the batch's distinct
users and distinct positive items, in-batch negatives), ``merged`` (one InfoNCE over users and items
together, SELFRec's current SGL), ``all_negatives`` (every user / item of the graph as negatives,
one term per batch row duplicates included: RecBole-GNN's SGL, after the SGL authors' code).
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from graphrec_lab.config import compose
from graphrec_lab.training.losses import bpr_loss
from graphrec_lab.training import objectives
from graphrec_lab.training.objectives import StepContext, info_nce


def merged_contrast(users1, items1, users2, items2, batch, temperature):
    """One InfoNCE over the batch's distinct users and items together (SELFRec's SGL)."""
    u, i = torch.unique(batch.users), torch.unique(batch.pos_items)
    return info_nce(torch.cat([users1[u], items1[i]]), torch.cat([users2[u], items2[i]]), temperature)


def all_negatives_contrast(users1, items1, users2, items2, batch, temperature):
    """Per batch row, the other view of every user (item) as candidates (RecBole-GNN's SGL)."""

    def side(view1, view2, ids):
        logits = F.normalize(view1[ids], dim=1) @ F.normalize(view2, dim=1).T / temperature  # [B, N_side]
        return F.cross_entropy(logits, ids)

    return side(users1, users2, batch.users) + side(items1, items2, batch.pos_items)


CONTRASTS = {"ours": objectives.batch_contrast, "merged": merged_contrast, "all_negatives": all_negatives_contrast}


def bpr_pass(task) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
    """The pass BPR scores, as the task runs it: users [U, D], items [I, D] and, when an objective
    contrasts layers or perturbs the pass itself (XSimGCL), the per-layer list."""
    model, graph = task.model, task.graph
    eps = max((o.main_perturb_eps for o in task.objectives.values()), default=0.0)
    if eps == 0 and not any(o.needs_layers for o in task.objectives.values()):
        user_emb, item_emb = model(graph)
        return user_emb, item_emb, None
    layers = model.propagate(graph, perturb_eps=eps)
    user_emb, item_emb = model.split(model.readout(layers))
    return user_emb, item_emb, layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["sgl", "simgcl", "xsimgcl"])
    parser.add_argument("--weight", type=float, required=True, help="the contrastive objective's weight (lambda)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", default="ml100k")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=None, help="stop each epoch after N steps (Gowalla's 396 steps are slow on a CPU)"
    )
    parser.add_argument("--per-side-init", action="store_true", help="Xavier-initialise the user and item rows as two tables (SELFRec's layout)")
    parser.add_argument("--contrast", choices=sorted(CONTRASTS), default="ours", help="InfoNCE formulation (docstring)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()  # overrides may follow the options

    cfg = compose([f"model={args.model}", f"data={args.data}", f"task.objectives.{args.model}.weight={args.weight}", *args.overrides])
    pl.seed_everything(int(cfg.seed), verbose=False)
    dm = instantiate(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    graph = dm.load_graph()
    model = instantiate(cfg.model, num_users=graph.num_users, num_items=graph.num_items)
    task = instantiate(cfg.task, model=model, _recursive_=False, _convert_="all")
    task.attach_graph(dm.train_graph)
    for objective in task.objectives.values():
        objective.contrast = CONTRASTS[args.contrast]  # Objective.contrast: the InfoNCE formulation
    table = model.input.embedding.weight
    if args.per_side_init:
        with torch.no_grad():
            torch.nn.init.xavier_uniform_(table[: graph.num_users])
            torch.nn.init.xavier_uniform_(table[graph.num_users :])
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.task.lr))
    steps_per_epoch = len(dm.train_dataloader()) if args.steps_per_epoch is None else min(args.steps_per_epoch, len(dm.train_dataloader()))
    print(f"{args.model} weight={args.weight} contrast={args.contrast} on {graph.name}: {steps_per_epoch} of {len(dm.train_dataloader())} steps/epoch")
    for epoch in range(args.epochs):
        for objective in task.objectives.values():
            objective.on_train_epoch_start(model, task.graph)
        total = steps = 0.0
        for step, batch in enumerate(dm.train_dataloader()):
            if step == steps_per_epoch:
                break
            user_emb, item_emb, layers = bpr_pass(task)
            u = user_emb[batch.users]
            bpr = bpr_loss((u * item_emb[batch.pos_items]).sum(-1), (u * item_emb[batch.neg_items]).sum(-1))
            ctx = StepContext(model, task.graph, batch, layers, user_emb, item_emb)
            contrastive = sum(objective(ctx) for objective in task.objectives.values())
            if step == 0:
                g_bpr = torch.autograd.grad(bpr, table, retain_graph=True)[0].norm()
                g_cl = torch.autograd.grad(contrastive, table, retain_graph=True)[0].norm() if args.weight > 0 else torch.tensor(0.0)
                final_norm = torch.cat([user_emb, item_emb]).norm(dim=1).mean()
                print(
                    f"epoch {epoch} step 0: |grad bpr| {g_bpr:.2e}  |grad contrastive| {g_cl:.2e}  "
                    f"mean ||e_final|| {final_norm:.3f}  mean ||e_0|| {table.norm(dim=1).mean():.3f}"
                )
            optimizer.zero_grad()
            (bpr + contrastive).backward()
            optimizer.step()
            total += bpr.item()
            steps += 1
        print(f"epoch {epoch}: mean BPR loss {total / steps:.6f} (chance level: log 2 = 0.6931)")


if __name__ == "__main__":
    main()
