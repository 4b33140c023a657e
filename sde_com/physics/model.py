"""One operating point, every branch: system + parameters → mean fields (Eq. (7)) → A, D (Eq. (6)) → V (Eq. (11)).

This is the readable per-point path (scipy's Lyapunov solver, numpy eigenvalues), used by the Python API,
by the time-domain simulator, and by the tests as the reference for the fast sweep kernel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from sde_com.errors import NumericalError
from sde_com.physics.gaussian import logneg
from sde_com.physics.linear import lyapunov_covariance_reference
from sde_com.physics.system import LinearSystem


@dataclass(frozen=True)
class OperatingPoint:
    """One mean-field branch of one operating point and its linearized dynamics.

    Attributes:
        branch: index of the branch, ascending (in q_s for the resonator).
        q_s: mean dimensionless displacement (Eq. (7)); NaN for a system without one.
        alpha_u, alpha_v: complex mean amplitudes of the driven and the reflected mode (photons = |α|²);
            NaN for a system without them.
        drift: A (Eq. (6) for the resonator), rad/s.  diffusion: D, rad/s.
        growth_rate: max Re eig(A), rad/s.
        cov: Lyapunov V of Eq. (11) where stable, else None.
        stable: the stability decision (``stability.decide_stability``: Routh–Hurwitz on A/ω_ref).
        marginal: the decision is within rounding (the methods disagree, or |growth_rate| ≲ 1e-9 ω_ref).
        mean_field: every mean-field value of the system's branch, by name.
    """

    branch: int
    q_s: float
    alpha_u: complex
    alpha_v: complex
    drift: np.ndarray
    diffusion: np.ndarray
    growth_rate: float
    cov: np.ndarray | None
    stable: bool
    marginal: bool
    mean_field: Mapping[str, complex | float] = field(default_factory=dict)

    @property
    def logneg(self) -> float:
        """E_N of (driven mode, mechanics), Eq. (12); NaN where there is no steady state."""
        return logneg(self.cov) if self.cov is not None else math.nan


def points(system: LinearSystem, params: Mapping[str, object] | None = None) -> list[OperatingPoint]:
    """Every branch of ``system`` at ``params``: A, D, the stability decision, and V of Eq. (11) where stable.

    V is solved in units of ω_ref (A/ω_ref, D/ω_ref: the same V, better-scaled matrices).
    """
    params = system.resolve(params)
    omega_ref = system.reference_rate(params)
    out = []
    for b in system.branches(params):
        verdict = system.stability(b, params)
        cov = _lyapunov(b, omega_ref, params) if verdict.stable else None
        mf = b.mean_field
        out.append(OperatingPoint(b.index, float(mf.get("q_s", math.nan)), complex(mf.get("alpha_u", math.nan)),
                                  complex(mf.get("alpha_v", math.nan)), b.drift, b.diffusion, verdict.growth_rate,
                                  cov, verdict.stable, verdict.marginal, mf))
    return out


def _lyapunov(branch, omega_ref: float, params) -> np.ndarray:
    """V of Eq. (11), solved in units of ω_ref; a failed solve at a stable point is a numerical failure."""
    try:
        return lyapunov_covariance_reference(branch.drift / omega_ref, branch.diffusion / omega_ref)
    except np.linalg.LinAlgError as exc:
        raise NumericalError(f"Lyapunov solve failed at branch {branch.index} of {dict(params)}: {exc}") from exc
