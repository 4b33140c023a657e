"""sde_com: steady-state and time-domain simulator of linear quantum Langevin systems with quantum noise.

Any linear system runs through one path (``LinearSystem``: a registered one by name, or its matrices as
``MatrixSystem``, or its Hamiltonian and dissipators as ``HamiltonianSystem``, built from strings or from
``sde_com.hamiltonian``'s ladder operators); the first, and the default, is the spinning optomechanical
resonator of Jiao et al., Phys. Rev. Lett. 125, 143605 (2020), whose own conveniences are in
``sde_com.resonator``. Rates are angular
(rad/s); quadratures in (x, p) pairs per mode; vacuum variance 1/2.

The public names below are imported on first use (PEP 562 ``__getattr__``): ``import sde_com`` and every
``sde-com`` command pay only for what they use (scipy, xarray, the kernels, dask and matplotlib load later).
"""

import importlib
from typing import TYPE_CHECKING

from sde_com import kernel_cache
from sde_com._version import __version__

kernel_cache.install()  # before any kernel module is imported: sde_com's kernels cache outside the package

if TYPE_CHECKING:  # the names as static tools see them (type checkers, mkdocstrings' API pages); see _API
    from sde_com import hamiltonian, resonator
    from sde_com.physics.gaussian import is_physical, logneg, logneg_symplectic
    from sde_com.physics.hamiltonian import HamiltonianSystem
    from sde_com.physics.linear import lyapunov_covariance_reference, moment_covariance, routh_hurwitz_stable
    from sde_com.physics.matrix import MatrixSystem
    from sde_com.physics.measurement import record_from_traces
    from sde_com.physics.resonator.device import hz_to_rad_per_s
    from sde_com.physics.spectra import filtered_logneg, filtered_mode_covariance, output_spectrum, spectral_matrix
    from sde_com.physics.system import LinearSystem, get_system, register_system
    from sde_com.results.conditional import conditional_sweep
    from sde_com.results.io import read_dataset, write_dataset
    from sde_com.results.periodic import periodic_sweep
    from sde_com.results.sweep import sweep
    from sde_com.runs.engine import run_scenario_to_file
    from sde_com.runs.scenario import load_scenario, parse_scenario, run_scenario
    from sde_com.simulation.conditional import conditional_simulate, kalman_filter
    from sde_com.simulation.detection import detect, welch_spectrum
    from sde_com.simulation.drive import Drive, drive
    from sde_com.simulation.simulate import SimulationSettings, simulate, simulate_time_steps
    from sde_com.simulation.wigner import wigner_check

# public name -> the module that defines it, imported on first use (the same as the block above: a test
# holds the two together). Every function that runs a system takes it as an instance or a registered name
# (``system=``, default the spinning resonator); the resonator's own conveniences are in ``sde_com.resonator``.
_API = {
    "LinearSystem": "sde_com.physics.system",
    "MatrixSystem": "sde_com.physics.matrix",
    "HamiltonianSystem": "sde_com.physics.hamiltonian",
    "get_system": "sde_com.physics.system",
    "register_system": "sde_com.physics.system",
    "SimulationSettings": "sde_com.simulation.simulate",
    "sweep": "sde_com.results.sweep",
    "conditional_sweep": "sde_com.results.conditional",
    "periodic_sweep": "sde_com.results.periodic",
    "conditional_simulate": "sde_com.simulation.conditional",
    "kalman_filter": "sde_com.simulation.conditional",
    "simulate": "sde_com.simulation.simulate",
    "simulate_time_steps": "sde_com.simulation.simulate",
    "Drive": "sde_com.simulation.drive",
    "drive": "sde_com.simulation.drive",
    "detect": "sde_com.simulation.detection",
    "wigner_check": "sde_com.simulation.wigner",
    "record_from_traces": "sde_com.physics.measurement",
    "welch_spectrum": "sde_com.simulation.detection",
    "filtered_logneg": "sde_com.physics.spectra",
    "filtered_mode_covariance": "sde_com.physics.spectra",
    "output_spectrum": "sde_com.physics.spectra",
    "spectral_matrix": "sde_com.physics.spectra",
    "is_physical": "sde_com.physics.gaussian",
    "logneg": "sde_com.physics.gaussian",
    "logneg_symplectic": "sde_com.physics.gaussian",
    "lyapunov_covariance_reference": "sde_com.physics.linear",
    "moment_covariance": "sde_com.physics.linear",
    "routh_hurwitz_stable": "sde_com.physics.linear",
    "hz_to_rad_per_s": "sde_com.physics.resonator.device",
    "load_scenario": "sde_com.runs.scenario",
    "parse_scenario": "sde_com.runs.scenario",
    "run_scenario": "sde_com.runs.scenario",
    "run_scenario_to_file": "sde_com.runs.engine",
    "read_dataset": "sde_com.results.io",
    "write_dataset": "sde_com.results.io",
}
# subpackages and modules reachable as attributes (``sde_com.physics.linear``) without an explicit import
_SUBPACKAGES = ("hamiltonian", "kernels", "physics", "random", "resonator", "results", "runs", "simulation")

__all__ = [
    "Drive",
    "HamiltonianSystem",
    "LinearSystem",
    "MatrixSystem",
    "SimulationSettings",
    "__version__",
    "conditional_simulate",
    "conditional_sweep",
    "detect",
    "drive",
    "filtered_logneg",
    "filtered_mode_covariance",
    "get_system",
    "hamiltonian",
    "hz_to_rad_per_s",
    "is_physical",
    "kalman_filter",
    "load_scenario",
    "logneg",
    "logneg_symplectic",
    "lyapunov_covariance_reference",
    "moment_covariance",
    "output_spectrum",
    "parse_scenario",
    "periodic_sweep",
    "read_dataset",
    "record_from_traces",
    "register_system",
    "resonator",
    "routh_hurwitz_stable",
    "run_scenario",
    "run_scenario_to_file",
    "simulate",
    "simulate_time_steps",
    "spectral_matrix",
    "sweep",
    "welch_spectrum",
    "wigner_check",
    "write_dataset",
]


def __getattr__(name: str):
    """Import a public name (or a subpackage) on first use and keep it in the module."""
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))
