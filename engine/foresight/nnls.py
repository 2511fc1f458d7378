"""Non-negative least squares (Lawson and Hanson, 1974), in numpy: scipy is not a dependency.

Every coefficient of the memory and time formulas is a cost (bytes per position, seconds per pixel), so
the fit keeps them at zero or above; a plain least-squares fit over a dozen points happily makes one
negative and then extrapolates badly.
"""

from __future__ import annotations

import numpy as np


def nnls(a: np.ndarray, b: np.ndarray, *, max_iter: int | None = None) -> np.ndarray:
    """x ≥ 0 minimising ‖a x − b‖₂ (active-set method)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    m, n = a.shape
    # Columns of very different scale (1 vs 1e9 pixels): normalise so the tolerance means the same for each.
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    a = a / scale
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = a.T @ (b - a @ x)
    tol = 1e-10 * max(1.0, float(np.abs(w).max(initial=0.0)))
    for _ in range(max_iter or 3 * n):
        if passive.all() or (w[~passive] <= tol).all():
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            blocking = passive & (z <= 0)
            alpha = np.min(x[blocking] / (x[blocking] - z[blocking]))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0.0
        w = a.T @ (b - a @ x)
    return x / scale


def weighted_relative_nnls(features: np.ndarray, target: np.ndarray, total: np.ndarray | None = None,
                           weights: np.ndarray | None = None) -> np.ndarray:
    """NNLS minimising Σ wᵢ ((fᵢ·x − targetᵢ) / totalᵢ)²: the error relative to what is reported (`total`,
    default `target`), so a 2 GiB point counts as much as a 40 GiB one."""
    total = target if total is None else total
    rows = np.sqrt(np.ones(len(target)) if weights is None else np.asarray(weights, dtype=float))
    rows = rows / np.maximum(np.abs(np.asarray(total, dtype=float)), 1e-12)
    return nnls(features * rows[:, None], target * rows)
