"""Synthetic demo data: a seeded card-transactions feed with drift knobs."""
