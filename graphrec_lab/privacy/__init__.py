"""Privacy-preserving training and privacy audits.

``edge_dp``: edge-level differential privacy of the training graph (imported by the data layer, so
it imports nothing from graphrec_lab). ``audit``: membership inference on a finished run.
This file imports nothing, so that ``graphrec_lab.data`` can import ``edge_dp`` without pulling in
the layers above it.
"""
