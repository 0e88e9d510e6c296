"""ml-20m-shaped synthetic work for the speed benches of both frameworks (NumPy only).

Uniform random ids: the speed of a training step or an evaluation does not depend on which ids are
drawn, only on the table sizes and the batch, so these stand in for ml-20m where no ml-20m is.
"""

from __future__ import annotations

import numpy as np

from recommendation.sampling import EpochSamples

ML20M_USERS = 138_493  # ml-20m after preprocessing (every user has >= 20 ratings)
ML20M_ITEMS = 26_744


def synthetic_samples(count: int, n_users: int, n_items: int, seed: int) -> EpochSamples:
    """An epoch's samples as the training loop gets them: host NumPy arrays, 1 positive in 5 (as with
    4 negatives per positive)."""
    rng = np.random.default_rng(seed)
    return EpochSamples(rng.integers(0, n_users, count, dtype=np.int32), rng.integers(0, n_items, count, dtype=np.int32),
                        (rng.random(count) < 0.2).astype(np.float32))


def synthetic_eval(users: int, n_items: int, negatives: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, valid) host arrays of `users` evaluation rows: `negatives` items, then the positive."""
    rng = np.random.default_rng(0)
    return (np.arange(users, dtype=np.int32), rng.integers(0, n_items, (users, negatives + 1), dtype=np.int32),
            np.ones((users, negatives), dtype=bool))
