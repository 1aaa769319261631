#!/usr/bin/env bash
# Extra LastFM rows, after run_all.sh: DiffNet at RecBole-GNN's learning rate (3 seeds, up to 400
# epochs), SocialLGN with the authors' code's whole-matrix fusion normalisation (one seed) and MHCN
# at lr 1e-2 (60 epochs) and 1e-3 (one seed each: ~7x LightGCN's cost per epoch).
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 GRAPHREC_DATA_DIR=${GRAPHREC_DATA_DIR:-../shared/datasets}
.venv/bin/python experiments/social/run.py --table lastfm --rows diffnet-lr5e-4
.venv/bin/python experiments/social/run.py --table lastfm --rows sociallgn-matrixnorm --seeds 2020
.venv/bin/python experiments/social/run.py --table lastfm --rows mhcn --seeds 2020 --epochs 60
.venv/bin/python experiments/social/run.py --table lastfm --rows mhcn-lr1e-3 --seeds 2020
