"""Mean-field steady state: every real branch of the self-consistent Eq. (7).

With Δ̃_j = Δ_j − G₀q_s, Eq. (7) (corrected in docs/physics.md) gives
    α_U = (iΔ̃_V + κ) ε / [(iΔ̃_U + κ)(iΔ̃_V + κ) + J²],   α_V = −iJ α_U / (iΔ̃_V + κ),
    q_s = (G₀/ω_m)(|α_U|² + |α_V|²).
In the dimensionless shift y = G₀q_s/κ the last line is a quintic polynomial P(y) = 0 (see
``steady_polynomial``), so all branches are the real roots of a polynomial: none can be missed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_BRANCHES = 5  # a quintic has at most five real roots

_MERGE_TOL = 1e-12  # roots closer than this (relative) are one (double) root: a fold of Eq. (7)


@njit(cache=True)
def steady_polynomial(d_u, d_v, j, k):
    """Coefficients (highest power first) of the quintic P(y) whose real roots are the branches of Eq. (7).

    All arguments are dimensionless: d_u = Δ_U/κ, d_v = Δ_V/κ, j = J/κ, k = G₀²ε²/(ω_m κ³); y = G₀q_s/κ.
    P(y) = y·|(1 + i(d_u − y))(1 + i(d_v − y)) + j²|² − k·(1 + (d_v − y)² + j²).
    """
    c0 = 1.0 + j * j - d_u * d_v
    c1 = d_u + d_v
    out = np.empty(6)
    out[0] = 1.0
    out[1] = -2.0 * c1
    out[2] = c1 * c1 - 2.0 * c0 + 4.0
    out[3] = 2.0 * c0 * c1 - 4.0 * c1 - k
    out[4] = c0 * c0 + c1 * c1 + 2.0 * k * d_v
    out[5] = -k * (1.0 + j * j + d_v * d_v)
    return out


@njit(cache=True)
def _polyval(c, deg, x):
    acc = c[0]
    for i in range(1, deg + 1):
        acc = acc * x + c[i]
    return acc


@njit(cache=True)
def _polyder_val(c, deg, x):
    acc = c[0] * deg
    for i in range(1, deg):
        acc = acc * x + c[i] * (deg - i)
    return acc


@njit(cache=True)
def _bracketed_root(c, deg, lo, hi, f_lo):
    """The root of the polynomial c in [lo, hi], where it is monotone and changes sign: Newton's method,
    falling back to bisection whenever a step leaves the bracket (cannot diverge)."""
    x = 0.5 * (lo + hi)
    for _ in range(200):
        fx = _polyval(c, deg, x)
        if fx == 0.0:
            return x
        if (fx < 0.0) == (f_lo < 0.0):
            lo = x
        else:
            hi = x
        d = _polyder_val(c, deg, x)
        x_new = x - fx / d if d != 0.0 else 0.5 * (lo + hi)
        if not (lo < x_new < hi):
            x_new = 0.5 * (lo + hi)
        if abs(x_new - x) <= 2e-16 * max(1.0, abs(x)) or x_new == lo or x_new == hi:
            return x_new
        x = x_new
    return x


@njit(cache=True)
def real_polynomial_roots(c, out):  # noqa: C901 (numba kernel, checked at 20)
    """All real roots (ascending, coinciding ones merged) of the polynomial c (highest power first,
    c[0] ≠ 0, degree ≤ 5); returns their number and writes them to ``out``.

    Root isolation by derivatives: between two consecutive real roots of P′ the polynomial P is monotone,
    so each such interval (and the two outer ones, closed by Cauchy's bound) holds at most one root and
    contains one exactly when P changes sign over it. Applied from P⁽ᵈ⁻¹⁾ (linear) up to P, this finds
    every simple real root; a root cannot be missed the way an iteration from a starting guess can.
    """
    deg = c.shape[0] - 1
    chain = np.zeros((deg + 1, deg + 1))  # row d: the derivative of degree d, highest power first
    for i in range(deg + 1):
        chain[deg, i] = c[i]
    for d in range(deg, 1, -1):
        for i in range(d):
            chain[d - 1, i] = chain[d, i] * (d - i)
    crit = np.empty(deg + 2)
    roots = np.empty(deg + 1)
    n_crit = 1
    crit[0] = -chain[1, 1] / chain[1, 0]
    for d in range(2, deg + 1):
        p = chain[d]
        bound = 0.0
        for i in range(1, d + 1):
            bound = max(bound, abs(p[i] / p[0]))
        bound += 1.0  # Cauchy: every root has |x| < 1 + max |c_i / c_0|
        n_roots = 0
        lo = -bound
        f_lo = _polyval(p, d, lo)
        for m in range(n_crit + 1):
            hi = crit[m] if m < n_crit else bound
            hi = min(max(hi, -bound), bound)
            f_hi = _polyval(p, d, hi)
            if f_lo == 0.0:
                x = lo
            elif hi > lo and (f_lo < 0.0) != (f_hi < 0.0) and f_hi != 0.0:
                x = _bracketed_root(p, d, lo, hi, f_lo)
            else:
                x = np.nan
            if x == x and (n_roots == 0 or abs(x - roots[n_roots - 1]) > _MERGE_TOL * (1.0 + abs(x))):
                roots[n_roots] = x
                n_roots += 1
            lo, f_lo = hi, f_hi
        if f_lo == 0.0 and (n_roots == 0 or abs(lo - roots[n_roots - 1]) > _MERGE_TOL * (1.0 + abs(lo))):
            roots[n_roots] = lo
            n_roots += 1
        n_crit = n_roots
        for i in range(n_roots):
            crit[i] = roots[i]
    for i in range(n_crit):
        out[i] = crit[i]
    return n_crit


@njit(cache=True)
def mean_fields(d_u, d_v, j, y, epsilon_over_kappa):
    """Intracavity amplitudes (α_U, α_V) of Eq. (7) at the shift y = G₀q_s/κ (dimensionless inputs)."""
    a = complex(1.0, d_u - y)
    b = complex(1.0, d_v - y)
    alpha_u = b * epsilon_over_kappa / (a * b + j * j)
    alpha_v = complex(0.0, -j) * alpha_u / b
    return alpha_u, alpha_v


def coupling_strength(G0: float, epsilon: float, omega_m: float, kappa: float) -> float:
    """Dimensionless drive strength k = G₀²ε²/(ω_m κ³) that sets the nonlinearity of Eq. (7)."""
    return G0 * G0 * epsilon * epsilon / (omega_m * kappa**3)


def steady_branches(delta_u: float, delta_v: float, J: float, kappa: float, G0: float, epsilon: float,
                    omega_m: float) -> list[dict]:
    """Every mean-field branch of Eq. (7) for given mode detunings Δ_U, Δ_V (rad/s), ascending in q_s.

    Each branch is a dict with ``q_s`` (dimensionless displacement), ``alpha_u``, ``alpha_v`` (complex
    amplitudes, photon number = |α|²) and the effective detunings ``delta_u_eff`` = Δ̃_U, ``delta_v_eff``
    = Δ̃_V (rad/s).
    """
    k = coupling_strength(G0, epsilon, omega_m, kappa)
    roots = np.empty(MAX_BRANCHES)
    # the roots of Eq. (7)'s polynomial: the two kernels the chain compiles anyway
    n = real_polynomial_roots(steady_polynomial(delta_u / kappa, delta_v / kappa, J / kappa, k), roots)
    branches = []
    for y in roots[:n]:
        alpha_u, alpha_v = mean_fields(delta_u / kappa, delta_v / kappa, J / kappa, y, epsilon / kappa)
        branches.append(
            dict(
                q_s=y * kappa / G0 if G0 > 0 else 0.0,
                alpha_u=complex(alpha_u),
                alpha_v=complex(alpha_v),
                delta_u_eff=delta_u - kappa * y,
                delta_v_eff=delta_v - kappa * y,
            )
        )
    return branches
