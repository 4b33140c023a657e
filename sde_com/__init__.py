"""sde_com: steady-state and time-domain simulator of a spinning optomechanical resonator with quantum noise.

Reproduces and extends Jiao et al., Phys. Rev. Lett. 125, 143605 (2020). Rates are angular (rad/s);
quadrature order (xU, yU, xV, yV, q, p); vacuum variance 1/2.
"""

from sde_com import kernel_cache

_restore_numba_cache_dir = kernel_cache.use_for_sde_com()  # the kernels below cache outside the package

from sde_com._version import __version__
from sde_com.physics.gaussian import is_physical, logneg, logneg_symplectic, revival_factor
from sde_com.physics.linear import lyapunov_covariance_reference, moment_covariance, routh_hurwitz_stable
from sde_com.physics.model import OperatingPoint, operating_points
from sde_com.physics.resonator.device import Device, hz_to_rad_per_s
from sde_com.physics.resonator.drift import diffusion_matrix, drift_matrix
from sde_com.physics.spectra import filtered_logneg, filtered_mode_covariance, output_spectrum, spectral_matrix
from sde_com.physics.system import LinearSystem, get_system, register_system
from sde_com.results.io import read_dataset, write_dataset
from sde_com.results.sweep import sweep
from sde_com.runs.engine import run_scenario_to_file
from sde_com.runs.scenario import load_scenario, parse_scenario, run_scenario
from sde_com.simulation.detection import detection_dataset, homodyne_record, welch_spectrum
from sde_com.simulation.drive import Drive, simulate_drive
from sde_com.simulation.simulate import SimulationSettings, simulate, simulate_point, simulate_time_steps
from sde_com.simulation.wigner import truncated_wigner_check

_restore_numba_cache_dir()  # every kernel is defined: other code keeps its own Numba cache setting

__all__ = [
    "LinearSystem",
    "get_system",
    "register_system",
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
