"""The spinning resonator's operating points from its ``Device``: ``physics.model.points`` of the registered
system at (device, Δ_c = detuning·ω_m, input direction); ``sde_com.resonator.operating_points``."""

from __future__ import annotations

import math

from sde_com.errors import UserError
from sde_com.physics.model import OperatingPoint, points
from sde_com.physics.resonator.device import DIRECTIONS, Device
from sde_com.physics.resonator.system import SpinningResonator


def validate_detuning_direction(detuning: float, direction: str) -> None:
    """Raise ValueError naming the parameter for a non-finite detuning or an unknown direction."""
    if isinstance(detuning, bool) or not isinstance(detuning, (int, float)) or not math.isfinite(detuning):
        raise UserError(f"detuning must be a finite real number (Δ_c/ω_m), got {detuning!r}")
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be one of ('ccw', 'cw'), got {direction!r}")



def operating_points(device: Device, detuning: float, direction: str = "ccw") -> list[OperatingPoint]:
    """All branches of the operating point (device, Δ_c = detuning·ω_m, input direction), ascending in q_s:
    ``points`` of the ``SpinningResonator``."""
    validate_detuning_direction(detuning, direction)
    return points(SpinningResonator(), {"detuning": detuning, "direction": direction, **device.as_dict()})
