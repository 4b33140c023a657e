"""The spinning resonator's own conveniences (Jiao et al., Phys. Rev. Lett. 125, 143605 (2020),
doi:10.1103/PhysRevLett.125.143605), where they add something to the generic API: its ``Device`` (the paper's
parameters in SI units with the rates derived from them, Eq. (1)), its operating points from a ``Device``
(``operating_points``: every branch of Eq. (7) with A, D and V), the drift and diffusion matrices of Eq. (6) from
rates, and the revival factor of Eq. (14).

Everything else runs the resonator as any system: ``sde_com.sweep(**params)``, ``sde_com.simulate(settings,
system="spinning_resonator", **params)``, ``sde_com.drive``, ``sde_com.detect``, ``sde_com.wigner_check``.
"""

from sde_com.physics.gaussian import revival_factor
from sde_com.physics.model import OperatingPoint
from sde_com.physics.resonator.device import Device
from sde_com.physics.resonator.drift import diffusion_matrix, drift_matrix
from sde_com.physics.resonator.points import operating_points

__all__ = ["Device", "OperatingPoint", "diffusion_matrix", "drift_matrix", "operating_points", "revival_factor",
           "simulate_drive"]


def simulate_drive(device: Device, detuning: float, direction: str, drive, settings,
                   mean_field_start: str = "empty"):
    """A transient of the resonator under a time-dependent ``drive`` (``sde_com.Drive``) from its ``Device``:
    ``sde_com.drive`` at (device, Δ_c = detuning·ω_m, input direction)."""
    from sde_com.simulation.drive import drive_dataset

    params = {"detuning": detuning, "direction": direction, **device.as_dict()}
    return drive_dataset("spinning_resonator", params, drive, settings, mean_field_start)
