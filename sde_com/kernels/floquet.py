"""The one-period maps of a modulated linear system (``physics.floquet``): fourth-order Magnus steps of the
augmented covariance equation, composed over each sample interval (Eqs. (P1)–(P2), docs/physics.md *Periodic
steady states*). Plain loops on small matrices, in a fixed order (no BLAS call)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_C = math.sqrt(3.0) / 12.0  # the commutator's weight in the two-node Magnus exponent
_TAYLOR_RTOL = 1e-17  # a Taylor term this small against the sum ends the series
_THETA = 0.5  # the exponent's 1-norm after scaling (the series then converges within ~15 terms)


@njit(cache=True)
def _mul(x, y, out):
    """out = x @ y (square, d × d)."""
    d = x.shape[0]
    for i in range(d):
        for j in range(d):
            s = 0.0
            for k in range(d):
                s += x[i, k] * y[k, j]
            out[i, j] = s


@njit(cache=True)
def _mul_t(x, y, out):
    """out = x @ yᵀ."""
    d = x.shape[0]
    for i in range(d):
        for j in range(d):
            s = 0.0
            for k in range(d):
                s += x[i, k] * y[j, k]
            out[i, j] = s


@njit(cache=True)
def _copy(src, dst):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@njit(cache=True)
def _identity(X):
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            X[i, j] = 1.0 if i == j else 0.0


@njit(cache=True)
def _squarings(a):
    """How often [[a, b], [0, −aᵀ]] is halved for its Taylor series to converge fast: until the 1-norm of a (and
    of −aᵀ) is _THETA or below. b does not enter: Z is linear in it and its terms shrink as a's do (the series
    stops relative to Z's own size), so a large diffusion costs no squarings (each squaring rounds X). At most
    1100 halvings (beyond any finite norm: a non-finite one gives a non-finite map, refused above)."""
    d = a.shape[0]
    norm = 0.0
    for j in range(d):
        column, row = 0.0, 0.0
        for i in range(d):
            column += abs(a[i, j])
            row += abs(a[j, i])
        norm = max(norm, column, row)
    squarings = 0
    while norm > _THETA and squarings < 1100:
        norm *= 0.5
        squarings += 1
    return squarings


@njit(cache=True)
def _taylor_term(a, b, factor, x, y, t1, t2):
    """The next term of the series: x ← x a·factor, y ← (x b − y aᵀ)·factor (x, y the previous term's blocks)."""
    d = a.shape[0]
    _mul(x, a, t1)
    _mul(x, b, t2)
    for i in range(d):
        for j in range(d):
            s = 0.0
            for m in range(d):
                s += y[i, m] * a[j, m]
            t2[i, j] = (t2[i, j] - s) * factor
    for i in range(d):
        for j in range(d):
            x[i, j] = t1[i, j] * factor
            y[i, j] = t2[i, j]


@njit(cache=True)
def _augmented_exp(a, b, X, Z, W, x, y, t1, t2):
    """[[X, Z], [0, W]] = exp([[a, b], [0, −aᵀ]]) (a, b: d × d) by scaling and squaring of the Taylor series,
    using the block structure: the k-th term is [[x_k, y_k], [0, (−1)^k x_kᵀ]] with x_k = x_{k−1} a / k and
    y_k = (x_{k−1} b − y_{k−1} aᵀ) / k. x, y, t1, t2: d × d scratch."""
    d = a.shape[0]
    squarings = _squarings(a)
    scale = 0.5 ** squarings
    _identity(x)
    _identity(X)
    _identity(W)
    y[:, :] = 0.0
    Z[:, :] = 0.0
    sign = 1.0
    for k in range(1, 40):
        sign = -sign
        _taylor_term(a, b, scale / k, x, y, t1, t2)
        size_x, size_y, size_z = 0.0, 0.0, 0.0
        for i in range(d):
            for j in range(d):
                X[i, j] += x[i, j]
                Z[i, j] += y[i, j]
                W[i, j] += sign * x[j, i]
                size_x, size_y = max(size_x, abs(x[i, j])), max(size_y, abs(y[i, j]))
                size_z = max(size_z, abs(Z[i, j]))
        # X's sum is at least the identity (relative to 1); Z's relative to its own size (a small diffusion)
        if size_x <= _TAYLOR_RTOL and size_y <= _TAYLOR_RTOL * size_z:
            break
    for _ in range(squarings):  # [[X, Z], [0, W]]² = [[X², X Z + Z W], [0, W²]]
        _mul(X, Z, t1)
        _mul(Z, W, t2)
        for i in range(d):
            for j in range(d):
                Z[i, j] = t1[i, j] + t2[i, j]
        _mul(X, X, t1)
        _copy(t1, X)
        _mul(W, W, t1)
        _copy(t1, W)


@njit(cache=True)
def _magnus_exponent(p1, p2, e1, e2, half, c, a, b):
    """The blocks of Ω = h/2 (M₁ + M₂) + c [M₂, M₁], M_i = [[A_i, D_i], [0, −A_iᵀ]]:
    a = h/2 (A₁ + A₂) + c [A₂, A₁], b = h/2 (D₁ + D₂) + c (A₂ D₁ − D₂ A₁ᵀ − A₁ D₂ + D₁ A₂ᵀ) (its lower right
    block is −aᵀ)."""
    d = a.shape[0]
    for i in range(d):
        for j in range(d):
            sa, sb = 0.0, 0.0
            for m in range(d):
                sa += p2[i, m] * p1[m, j] - p1[i, m] * p2[m, j]
                sb += p2[i, m] * e1[m, j] - e2[i, m] * p1[j, m] - p1[i, m] * e2[m, j] + e1[i, m] * p2[j, m]
            a[i, j] = half * (p1[i, j] + p2[i, j]) + c * sa
            b[i, j] = half * (e1[i, j] + e2[i, j]) + c * sb


@njit(cache=True, nogil=True)
def magnus_interval_maps(A1, A2, D1, D2, h, substeps, Phi_out, Q_out):
    """(Φ_k, Q_k) over each sample interval k of ``substeps`` Magnus steps of length h (step n = k·substeps + j):
    the two-node fourth-order Magnus exponent of the augmented M = [[A, D], [0, −Aᵀ]] at the Gauss–Legendre
    nodes (A1, D1), (A2, D2) ((n_steps, d, d) each), Ω = h/2 (M₁ + M₂) + (√3/12) h² [M₂, M₁], whose exponential
    [[Φ_n, Z_n], [0, Φ_n^−ᵀ]] gives the step's Φ_n and Q_n = Z_n Φ_nᵀ (Van Loan; Eq. (P2) over one step).
    The steps compose in time order: Φ ← Φ_n Φ, Q ← Φ_n Q Φ_nᵀ + Q_n. Phi_out, Q_out: (samples, d, d)."""
    d = A1.shape[1]
    a, b = np.empty((d, d)), np.empty((d, d))
    X, Z, W = np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    x, y, t1, t2 = np.empty((d, d)), np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    q, P, Q = np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
    for k in range(Phi_out.shape[0]):
        _identity(P)
        Q[:, :] = 0.0
        for n in range(k * substeps, (k + 1) * substeps):
            _magnus_exponent(A1[n], A2[n], D1[n], D2[n], 0.5 * h, _C * h * h, a, b)
            _augmented_exp(a, b, X, Z, W, x, y, t1, t2)
            _mul_t(Z, X, q)  # the step's Q_n = Z Φ_nᵀ
            _mul(X, P, t1)  # Φ ← Φ_n Φ
            _copy(t1, P)
            _mul(X, Q, t1)  # Q ← Φ_n Q Φ_nᵀ + ½ (Q_n + Q_nᵀ)
            _mul_t(t1, X, t2)
            for i in range(d):
                for j in range(d):
                    Q[i, j] = t2[i, j] + 0.5 * (q[i, j] + q[j, i])
        for i in range(d):
            for j in range(d):
                Phi_out[k, i, j] = P[i, j]
                Q_out[k, i, j] = 0.5 * (Q[i, j] + Q[j, i])


@njit(cache=True)
def monodromy(Phi_k, Q_k, Phi, Q):
    """The one-period maps from the interval maps (Eq. (P2)): Φ = Φ_{K−1} ⋯ Φ_0, Q composed likewise
    (Q ← Φ_k Q Φ_kᵀ + Q_k). Phi, Q: d × d outputs."""
    d = Phi.shape[0]
    t1, t2 = np.empty((d, d)), np.empty((d, d))
    for i in range(d):
        for j in range(d):
            Phi[i, j] = 1.0 if i == j else 0.0
            Q[i, j] = 0.0
    for k in range(Phi_k.shape[0]):
        _mul(Phi_k[k], Phi, t1)
        _copy(t1, Phi)
        _mul(Phi_k[k], Q, t1)
        _mul_t(t1, Phi_k[k], t2)
        for i in range(d):
            for j in range(d):
                Q[i, j] = t2[i, j] + Q_k[k, i, j]


@njit(cache=True)
def propagate_phases(Phi_k, Q_k, V0, out):
    """V at every sample phase from V(0) = V0 (Eq. (P3)'s solution): out[0] = V0, out[k + 1] = ½ (W + Wᵀ) with
    W = Φ_k out[k] Φ_kᵀ + Q_k. out: (samples, d, d)."""
    d = V0.shape[0]
    t1, t2 = np.empty((d, d)), np.empty((d, d))
    out[0] = V0
    for k in range(out.shape[0] - 1):
        _mul(Phi_k[k], out[k], t1)
        _mul_t(t1, Phi_k[k], t2)
        for i in range(d):
            for j in range(d):
                out[k + 1, i, j] = 0.5 * (t2[i, j] + t2[j, i]) + Q_k[k, i, j]
