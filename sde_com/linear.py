"""Linearized fluctuation dynamics: drift A (Eq. (6)), diffusion D, stability, Lyapunov V (Eq. (11)).

Quadrature order u = (δX_U, δY_U, δX_V, δY_V, δq, δp); vacuum variance 1/2 on each optical quadrature.
Rates in rad/s. The functions decorated with ``njit`` are plain array functions used by the fast sweep
kernel; ``scipy``-based ones beside them are the slow, obviously-right references the tests compare with.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numba import njit

QUADRATURES: tuple[str, ...] = ("xU", "yU", "xV", "yV", "q", "p")
N_QUADRATURES = 6


@njit(cache=True)
def fill_drift_matrix(out, kappa, delta_u_eff, delta_v_eff, J, G_u, G_v, omega_m, gamma_m):
    """Write the drift matrix A of Eq. (6) (corrected in PHYSICS.md) into the 6×6 array ``out``.

    G_j = √2 G₀ α_j is the effective coupling of mode j (complex), Δ̃_j the effective detunings.
    Any consistent unit of rate works (rad/s, or everything divided by ω_m).
    """
    out[:, :] = 0.0
    out[0, 0] = -kappa
    out[0, 1] = delta_u_eff
    out[0, 3] = J
    out[0, 4] = -G_u.imag
    out[1, 0] = -delta_u_eff
    out[1, 1] = -kappa
    out[1, 2] = -J
    out[1, 4] = G_u.real
    out[2, 1] = J
    out[2, 2] = -kappa
    out[2, 3] = delta_v_eff
    out[2, 4] = -G_v.imag
    out[3, 0] = -J
    out[3, 2] = -delta_v_eff
    out[3, 3] = -kappa
    out[3, 4] = G_v.real
    out[4, 5] = omega_m
    out[5, 0] = G_u.real
    out[5, 1] = G_u.imag
    out[5, 2] = G_v.real
    out[5, 3] = G_v.imag
    out[5, 4] = -omega_m
    out[5, 5] = -gamma_m


def drift_matrix(kappa, delta_u_eff, delta_v_eff, J, G_u, G_v, omega_m, gamma_m) -> np.ndarray:
    """Drift matrix A of Eq. (6) as a new 6×6 array (see ``fill_drift_matrix``)."""
    out = np.empty((6, 6))
    fill_drift_matrix(out, float(kappa), float(delta_u_eff), float(delta_v_eff), float(J), complex(G_u),
                      complex(G_v), float(omega_m), float(gamma_m))
    return out


def diffusion_matrix(kappa: float, gamma_m: float, n_thermal: float) -> np.ndarray:
    """Diffusion matrix D = diag(κ, κ, κ, κ, 0, γ_m(2n_m + 1)) under Eq. (10), vacuum variance 1/2."""
    return np.diag([kappa, kappa, kappa, kappa, 0.0, gamma_m * (2.0 * n_thermal + 1.0)])


# Stability ---------------------------------------------------------------------------------------


def max_growth_rate(A: np.ndarray) -> float:
    """Largest real part of the eigenvalues of A (rad/s); the point is stable iff it is < 0."""
    return float(np.max(np.linalg.eigvals(A).real))


@njit(cache=True)
def characteristic_polynomial(A):
    """Coefficients c (length n+1, c[0] = 1) of det(λI − A) = Σ c[i] λ^(n−i), by Faddeev–LeVerrier."""
    n = A.shape[0]
    c = np.zeros(n + 1)
    c[0] = 1.0
    M = np.zeros((n, n))
    AM = np.zeros((n, n))
    for k in range(1, n + 1):
        for i in range(n):
            M[i, i] += c[k - 1]
        tr = 0.0
        for i in range(n):
            for j in range(n):
                acc = 0.0
                for m in range(n):
                    acc += A[i, m] * M[m, j]
                AM[i, j] = acc
            tr += AM[i, i]
        c[k] = -tr / k
        M, AM = AM, M
    return c


@njit(cache=True)
def routh_hurwitz_stable(A):
    """Routh–Hurwitz criterion (ref. [59] of the paper): True iff every eigenvalue of A has Re < 0.

    Every coefficient of the characteristic polynomial and the whole first column of the Routh array must
    be positive. Scale A to O(1) entries (e.g. divide by ω_m) for a well-conditioned polynomial.
    """
    c = characteristic_polynomial(A)
    n = c.shape[0] - 1
    for i in range(n + 1):
        if not c[i] > 0.0:
            return False
    width = n // 2 + 2
    prev = np.zeros(width)
    cur = np.zeros(width)
    for i in range(width - 1):
        if 2 * i <= n:
            prev[i] = c[2 * i]
        if 2 * i + 1 <= n:
            cur[i] = c[2 * i + 1]
    for _ in range(n - 1):
        if not cur[0] > 0.0:
            return False
        head = prev[0]
        for i in range(width - 1):  # next Routh row, written over prev
            prev[i] = (cur[0] * prev[i + 1] - head * cur[i + 1]) / cur[0]
        prev[width - 1] = 0.0
        prev, cur = cur, prev
    return cur[0] > 0.0


# Lyapunov steady state ---------------------------------------------------------------------------


def lyapunov_covariance_reference(A: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Steady-state covariance V solving A V + V Aᵀ = −D (Eq. (11)) with scipy's Bartels–Stewart solver."""
    V = scipy.linalg.solve_continuous_lyapunov(A, -D)
    return 0.5 * (V + V.T)


@njit(cache=True)
def _solve_in_place(M, rhs):
    """Gaussian elimination with partial pivoting; overwrites M and returns the solution in rhs."""
    n = rhs.shape[0]
    for col in range(n):
        piv = col
        big = abs(M[col, col])
        for r in range(col + 1, n):
            if abs(M[r, col]) > big:
                big = abs(M[r, col])
                piv = r
        if piv != col:
            for c in range(col, n):
                M[col, c], M[piv, c] = M[piv, c], M[col, c]
            rhs[col], rhs[piv] = rhs[piv], rhs[col]
        inv = 1.0 / M[col, col]
        for r in range(col + 1, n):
            f = M[r, col] * inv
            if f != 0.0:
                for c in range(col + 1, n):
                    M[r, c] -= f * M[col, c]
                rhs[r] -= f * rhs[col]
    for r in range(n - 1, -1, -1):
        acc = rhs[r]
        for c in range(r + 1, n):
            acc -= M[r, c] * rhs[c]
        rhs[r] = acc / M[r, r]
    return rhs


@njit(cache=True)
def lyapunov_covariance(A, D):
    """Steady-state covariance V of Eq. (11), A V + V Aᵀ = −D, for symmetric V.

    Solves the linear system for the n(n+1)/2 independent entries of V directly (21 unknowns for n = 6),
    several times cheaper than Bartels–Stewart for one small matrix. Only meaningful where A is stable;
    scale A and D by the same rate (e.g. 1/ω_m) for conditioning: V is unchanged.
    """
    n = A.shape[0]
    m = n * (n + 1) // 2
    index = np.empty((n, n), dtype=np.int64)
    r = 0
    for i in range(n):
        for j in range(i, n):
            index[i, j] = r
            index[j, i] = r
            r += 1
    M = np.zeros((m, m))
    rhs = np.empty(m)
    for k in range(n):
        for kk in range(k, n):  # equation (k, kk): Σ_s A[k,s] V[s,kk] + V[k,s] A[kk,s] = −D[k,kk]
            row = index[k, kk]
            rhs[row] = -D[k, kk]
            for s in range(n):
                M[row, index[s, kk]] += A[k, s]
                M[row, index[k, s]] += A[kk, s]
    _solve_in_place(M, rhs)
    V = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            V[i, j] = rhs[index[i, j]]
    return V


def lyapunov_residual(A: np.ndarray, V: np.ndarray, D: np.ndarray) -> float:
    """Relative residual ‖AV + VAᵀ + D‖ / (2‖A‖‖V‖ + ‖D‖) of Eq. (11) (Frobenius norms)."""
    R = A @ V + V @ A.T + D
    scale = 2.0 * np.linalg.norm(A) * np.linalg.norm(V) + np.linalg.norm(D)
    return float(np.linalg.norm(R) / scale)


def moment_covariance(A: np.ndarray, D: np.ndarray, V0: np.ndarray, t: float, V_inf: np.ndarray | None = None):
    """Covariance at time t from V(0) = V0: V(t) = e^{At}(V0 − V∞)e^{Aᵀt} + V∞ (PHYSICS.md, stochastic picture).

    It solves dV/dt = AV + VAᵀ + D exactly; requires a stable A (V∞ from Eq. (11)).
    """
    if V_inf is None:
        V_inf = lyapunov_covariance_reference(A, D)
    M = scipy.linalg.expm(A * t)
    V = M @ (V0 - V_inf) @ M.T + V_inf
    return 0.5 * (V + V.T)
