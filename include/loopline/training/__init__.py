"""Retraining: training snapshots from validated data, the Keras model, evaluation."""
