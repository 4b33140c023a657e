"""One operating point, every branch: device + drive → mean fields (Eq. (7)) → A, D (Eq. (6)) → V (Eq. (11)).

This is the readable per-point path (scipy's Lyapunov solver, numpy eigenvalues), used by the Python API,
by the time-domain simulator, and by the tests as the reference for the fast sweep kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sde_com.physics.gaussian import logneg
from sde_com.physics.linear import (
    diffusion_matrix,
    drift_matrix,
    lyapunov_covariance_reference,
    max_growth_rate,
)
from sde_com.physics.resonator.device import Device, mode_detunings
from sde_com.physics.resonator.steady import steady_branches


@dataclass(frozen=True)
class OperatingPoint:
    """One mean-field branch of one operating point and its linearized dynamics.

    Attributes:
        branch: index of the branch, ascending in q_s.
        q_s: mean dimensionless displacement (Eq. (7)).
        alpha_u, alpha_v: complex mean amplitudes of the driven and the reflected mode (photons = |α|²).
        drift: A of Eq. (6), rad/s.  diffusion: D, rad/s.
        growth_rate: max Re eig(A), rad/s; stable iff < 0.
        cov: Lyapunov V of Eq. (11) where stable, else None.
    """

    branch: int
    q_s: float
    alpha_u: complex
    alpha_v: complex
    drift: np.ndarray
    diffusion: np.ndarray
    growth_rate: float
    cov: np.ndarray | None

    @property
    def stable(self) -> bool:
        return self.growth_rate < 0.0

    @property
    def logneg(self) -> float:
        """E_N of (driven mode, mechanics), Eq. (12); NaN where there is no steady state."""
        return logneg(self.cov) if self.cov is not None else math.nan


def validate_detuning_direction(detuning: float, direction: str) -> None:
    """Raise ValueError naming the parameter for a non-finite detuning or an unknown direction."""
    if isinstance(detuning, bool) or not isinstance(detuning, (int, float)) or not math.isfinite(detuning):
        raise ValueError(f"detuning must be a finite real number (Δ_c/ω_m), got {detuning!r}")
    if direction not in ("ccw", "cw"):
        raise ValueError(f"direction must be one of ('ccw', 'cw'), got {direction!r}")


def operating_points(device: Device, detuning: float, direction: str = "ccw") -> list[OperatingPoint]:
    """All branches of the operating point (device, Δ_c = detuning·ω_m, input direction), ascending in q_s."""
    validate_detuning_direction(detuning, direction)
    kappa, omega_m = device.kappa, device.omega_m
    delta_u, delta_v = mode_detunings(detuning * omega_m, device.sagnac_shift, direction)
    D = diffusion_matrix(kappa, device.gamma_m, device.n_thermal)
    points = []
    for i, b in enumerate(steady_branches(delta_u, delta_v, device.J, kappa, device.G0, device.epsilon, omega_m)):
        g = math.sqrt(2.0) * device.G0
        A = drift_matrix(kappa, b["delta_u_eff"], b["delta_v_eff"], device.J, g * b["alpha_u"],
                         g * b["alpha_v"], omega_m, device.gamma_m)
        rate = max_growth_rate(A)
        # Solve in units of ω_m: same V, better-scaled matrices.
        cov = lyapunov_covariance_reference(A / omega_m, D / omega_m) if rate < 0.0 else None
        points.append(OperatingPoint(i, b["q_s"], b["alpha_u"], b["alpha_v"], A, D, rate, cov))
    return points
