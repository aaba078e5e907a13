"""Serving a registered model: its on-disk format, its inputs from stored rows, compiled
inference, a per-process cache of verified downloads, and measuring it on a holdout.

Used by training (to save and evaluate), promotion (the latency gate judges the model the way
it will be served), batch scoring (inside Spark tasks) and the streaming consumers.
TensorFlow is imported inside functions only.
"""
