"""The one stability decision of a linear system du = A u dt + dW: does a steady state exist?

A mean-field branch has a stationary Gaussian state (Lyapunov V of Eq. (11)) iff every eigenvalue of the
drift A has Re λ < 0. The decision is the Routh–Hurwitz criterion (ref. [59] of the paper) on A/ω_ref, the
same njit test the fast steady-state chain runs (``resonator.chain``), so the per-point path and the sweep
never disagree; the growth rate max Re λ comes from numpy's eigenvalues and is reported beside it. Where the
two methods disagree, or the growth rate is within ``MARGINAL_TOL``·ω_ref of zero, the point is flagged
``marginal``: its verdict is decided by rounding, not by physics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sde_com.physics.linear import routh_hurwitz_stable

# Relative width of the marginal band, |max Re λ|/ω_ref < MARGINAL_TOL. On A/ω_ref with O(1) entries (the
# resonator: κ/ω_m ≈ 0.6, G/ω_m ≲ 1) the 6×6 characteristic polynomial (Faddeev–LeVerrier), the Routh array
# and LAPACK's eigenvalues each carry a relative rounding of ~1e-13 (n³ flops at ε ≈ 2e-16, times a modest
# condition number); near a double eigenvalue (an exceptional point) the error grows like √ε ≈ 1e-8 of the
# splitting but the real part of a conjugate pair stays ~1e-12. 1e-9 sits three or more orders above that
# and four orders below the smallest physical rate of the resonator, γ_m/(2ω_m) ≈ 4e-5.
MARGINAL_TOL = 1e-9


@dataclass(frozen=True)
class Stability:
    """Verdict on one drift matrix.

    Attributes:
        stable: every eigenvalue of A has Re < 0, by Routh–Hurwitz on A/ω_ref (the decision).
        marginal: Routh–Hurwitz and the eigenvalues disagree, or |growth_rate| < MARGINAL_TOL·ω_ref.
        growth_rate: max Re eig(A), rad/s (from numpy's eigenvalues).
    """

    stable: bool
    marginal: bool
    growth_rate: float


def decide_stability(A, omega_ref: float | None = None) -> Stability:
    """Stability of du = A u dt + dW: Routh–Hurwitz on A/ω_ref decides, eigenvalues give the growth rate.

    ``omega_ref`` (rad/s, > 0) is the system's reference rate (ω_m for the spinning resonator: the chain
    tests exactly A/ω_m); None uses the largest |A_kl|, which puts A/ω_ref at O(1) too (for callers, such
    as the spectra, that hold only A). A non-finite A is unstable (and marginal: there is no verdict).
    """
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"A must be a non-empty square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        return Stability(False, True, float("nan"))
    if omega_ref is None:
        omega_ref = float(np.max(np.abs(A))) or 1.0
    if not (np.isfinite(omega_ref) and omega_ref > 0.0):
        raise ValueError(f"omega_ref must be a finite rate > 0 (rad/s), got {omega_ref!r}")
    stable = bool(routh_hurwitz_stable(np.ascontiguousarray(A / omega_ref)))
    rate = float(np.max(np.linalg.eigvals(A).real))
    marginal = stable != (rate < 0.0) or abs(rate) < MARGINAL_TOL * omega_ref
    return Stability(stable, bool(marginal), rate)
