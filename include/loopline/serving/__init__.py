"""Serving a registered model: its on-disk format, its inputs from stored rows, compiled
inference, a per-process cache of verified downloads, measuring it on a holdout, and explaining
its scores (explain.py: SHAP attributions per row, a version's global feature importance).

Used by training (to save and evaluate), promotion (the latency gate judges the model the way
it will be served), batch scoring (inside Spark tasks), the streaming consumers, and
`loopline explain`.
TensorFlow is imported inside functions only.
"""
