"""Per-epoch schedules shared by the search and the retraining loops (epochs 0-based)."""

from __future__ import annotations

import math


def cosine(lr: float, lr_min: float, epoch: int, epochs: int) -> float:
    """Cosine annealing from ``lr`` towards ``lr_min`` over ``epochs``; epoch 0 trains at ``lr``
    (torch's CosineAnnealingLR with ``T_max=epochs``, in closed form so a resumed run needs no state)."""
    return lr_min + (lr - lr_min) * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0


def step(lr: float, gamma: float, period: int, epoch: int) -> float:
    """``lr * gamma ** (epoch // period)`` (torch's StepLR)."""
    return lr * gamma ** (epoch // period)


def linear_ramp(final: float, epoch: int, epochs: int) -> float:
    """From 0 at epoch 0 towards ``final`` (reached after the last epoch)."""
    return final * epoch / epochs
