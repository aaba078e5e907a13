"""Training snapshots: a stable holdout. Reading a window off the real S3 server is in
tests/component/training/test_snapshot.py."""

from __future__ import annotations

import numpy as np
from loopline.demo.card_transactions import generate
from loopline.training.snapshot import holdout_mask


def test_the_holdout_is_chosen_by_key_so_it_is_stable() -> None:
    keys = generate(2000, seed=1).column("transaction_id")
    first, again = holdout_mask(keys, 0.2), holdout_mask(keys.slice(500), 0.2)
    assert np.array_equal(first[500:], again)
