"""One call seeds every random number generator a run touches; optional deterministic kernels."""

from __future__ import annotations

import os
import random
import sys

import numpy as np


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy, and PyTorch / TensorFlow when they are imported (never imports them).

    `deterministic=True` also asks the frameworks for deterministic kernels: bit-identical reruns
    on the same hardware, at some speed cost (cuDNN autotuning off, deterministic scatter ops).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)  # seeds CUDA too
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.random.set_seed(seed)
        # the global tf.random.Generator (checkpointed by tf_runtime.save_payload) seeded too; with
        # op determinism on, TF refuses `get_global_generator()` unless one was set explicitly
        tf.random.set_global_generator(tf.random.Generator.from_seed(seed))
        try:
            import keras

            keras.utils.set_random_seed(seed)
        except ImportError:
            pass
        if deterministic:
            tf.config.experimental.enable_op_determinism()


def python_rng_states() -> dict:
    """RNG states of Python and NumPy, for checkpoints (frameworks add their own)."""
    return {"python": random.getstate(), "numpy": np.random.get_state()}


def restore_python_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
