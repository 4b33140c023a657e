"""The moment recursion of a covariance matrix: V(t + τ) = Φ(τ) V(t) Φ(τ)ᵀ + Q(τ), symmetrized at every
recorded time (``physics.linear.moment_covariances`` computes the maps and calls it)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def propagate_covariances(Phi, PhiT, Q, V0, gap_index, out):
    """out[k] = ½ (W + Wᵀ), W = Φ_g V Φ_gᵀ + Q_g with g = gap_index[k] (W = V when g < 0, a repeated time)
    and V = out[k − 1] (V0 for k = 0): the exact recursion of dV/dt = AV + VAᵀ + D between recorded times,
    docs/physics.md "The stochastic picture". Phi, PhiT, Q: (n_gaps, d, d) C-contiguous, PhiT[g] = Phi[g]ᵀ.
    The products are BLAS's (``np.dot``), the operations those of the NumPy loop it replaces, bit for bit."""
    d = V0.shape[0]
    PV = np.empty((d, d))
    W = V0.copy()
    V = V0.copy()
    for k in range(gap_index.shape[0]):
        g = gap_index[k]
        if g >= 0:
            np.dot(Phi[g], V, PV)
            np.dot(PV, PhiT[g], W)
            W += Q[g]
        for i in range(d):
            for j in range(d):
                out[k, i, j] = (W[i, j] + W[j, i]) * 0.5
        V = out[k]
