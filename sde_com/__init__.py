"""sde_com: steady-state and time-domain simulator of a spinning optomechanical resonator with quantum noise.

Reproduces and extends Jiao et al., Phys. Rev. Lett. 125, 143605 (2020). Rates are angular (rad/s);
quadrature order (xU, yU, xV, yV, q, p); vacuum variance 1/2.
"""

from . import kernel_cache

_restore_numba_cache_dir = kernel_cache.use_for_sde_com()  # the kernels below cache outside the package

from ._version import __version__
from .detection import detection_dataset, homodyne_record, welch_spectrum
from .device import Device, hz_to_rad_per_s
from .drive import Drive, simulate_drive
from .engine import run_scenario_to_file
from .gaussian import is_physical, logneg, logneg_symplectic, revival_factor
from .io import read_dataset, write_dataset
from .linear import (
    diffusion_matrix,
    drift_matrix,
    lyapunov_covariance_reference,
    moment_covariance,
    routh_hurwitz_stable,
)
from .model import OperatingPoint, operating_points
from .scenario import load_scenario, parse_scenario, run_scenario
from .simulate import SimulationSettings, simulate, simulate_point, simulate_time_steps
from .spectra import filtered_logneg, filtered_mode_covariance, output_spectrum, spectral_matrix
from .sweep import sweep
from .wigner import truncated_wigner_check

_restore_numba_cache_dir()  # every kernel is defined: other code keeps its own Numba cache setting

__all__ = [
    "Device",
    "Drive",
    "OperatingPoint",
    "SimulationSettings",
    "__version__",
    "detection_dataset",
    "diffusion_matrix",
    "drift_matrix",
    "filtered_logneg",
    "filtered_mode_covariance",
    "homodyne_record",
    "hz_to_rad_per_s",
    "is_physical",
    "load_scenario",
    "logneg",
    "logneg_symplectic",
    "lyapunov_covariance_reference",
    "moment_covariance",
    "operating_points",
    "output_spectrum",
    "parse_scenario",
    "read_dataset",
    "revival_factor",
    "routh_hurwitz_stable",
    "run_scenario",
    "run_scenario_to_file",
    "simulate",
    "simulate_drive",
    "simulate_point",
    "simulate_time_steps",
    "spectral_matrix",
    "sweep",
    "truncated_wigner_check",
    "welch_spectrum",
    "write_dataset",
]
