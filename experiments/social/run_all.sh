#!/usr/bin/env bash
# Every table of experiments/social/README.md, one run at a time (2-core machine).
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 GRAPHREC_DATA_DIR=${GRAPHREC_DATA_DIR:-../shared/datasets}
.venv/bin/python experiments/social/run.py --table lastfm
.venv/bin/python experiments/social/run.py --table friends
.venv/bin/python experiments/social/run.py --table yelp --seeds 2020
