"""sde_com: steady-state and time-domain simulator of a spinning optomechanical resonator with quantum noise.

Reproduces and extends Jiao et al., Phys. Rev. Lett. 125, 143605 (2020). Rates are angular (rad/s);
quadrature order (xU, yU, xV, yV, q, p); vacuum variance 1/2.
"""

from ._version import __version__
from .device import Device, hz_to_rad_per_s
from .gaussian import is_physical, logneg, logneg_symplectic, revival_factor
from .linear import (
    diffusion_matrix,
    drift_matrix,
    lyapunov_covariance_reference,
    moment_covariance,
    routh_hurwitz_stable,
)
from .model import OperatingPoint, operating_points
from .sweep import sweep

__all__ = [
    "Device",
    "OperatingPoint",
    "__version__",
    "diffusion_matrix",
    "drift_matrix",
    "hz_to_rad_per_s",
    "is_physical",
    "logneg",
    "logneg_symplectic",
    "lyapunov_covariance_reference",
    "moment_covariance",
    "operating_points",
    "revival_factor",
    "routh_hurwitz_stable",
    "sweep",
]
