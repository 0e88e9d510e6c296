"""The reference's learning rate: linear warmup, then decay with the inverse square root of the step.

mlcommons/training translation/tensorflow/transformer/transformer_main.py, `get_learning_rate`:

    lr(step) = learning_rate * hidden_size^-0.5 * min(1, step / warmup_steps) * rsqrt(max(step, warmup_steps))

where `step` is the number of optimizer updates done before this one (TF's global step read before
its increment: the very first update has a learning rate of 0, as in the reference). Both
frameworks call this one function.
"""

from __future__ import annotations


def learning_rate(step: int, base: float, hidden_size: int, warmup_steps: int) -> float:
    warmup = float(warmup_steps)
    return base * hidden_size ** -0.5 * min(1.0, step / warmup) * max(float(step), warmup) ** -0.5
