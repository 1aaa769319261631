#!/usr/bin/env bash
# Set up .venv: the pinned torch first (on this kind of CPU machine pip takes a local CPU build; on a
# GPU machine PyPI's torch==2.13.0 is the CUDA build), then graphrec_lab and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "$TORCH_SPEC"
fi
python -m pip install -q -e ".[test]"
python -c "import torch, lightning, torch_geometric, graphrec_lab; print('graphrec_lab ready: torch', torch.__version__, '| lightning', lightning.__version__, '| pyg', torch_geometric.__version__)"
