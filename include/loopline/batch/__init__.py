"""Batch scoring of validated data with the champion, on Spark."""
