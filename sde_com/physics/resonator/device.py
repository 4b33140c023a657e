"""Physical parameters of the spinning optomechanical resonator and their derived constants.

Every rate and frequency is an angular frequency in rad/s (see docs/physics.md, "Units"); a user who has a
frequency f in Hz passes ``hz_to_rad_per_s(f)``. The defaults are the paper's values read literally as
angular rates, which is the reading that reproduces its figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from sde_com.errors import UserError

# CODATA exact values (SI).
SPEED_OF_LIGHT = 299_792_458.0  # m/s
HBAR = 1.054_571_817e-34  # J s
BOLTZMANN = 1.380_649e-23  # J/K


def hz_to_rad_per_s(frequency_hz: float) -> float:
    """Convert an ordinary frequency f (Hz) to the angular rate 2πf (rad/s) that sde_com uses."""
    return 2.0 * math.pi * frequency_hz


# Derived constants as functions of the parameters. They broadcast over numpy arrays, so the sweep
# evaluates them for a whole grid at once; the Device properties call the same functions.


def cavity_frequency(wavelength):
    """Cavity resonance ω_c = 2πc/λ, rad/s."""
    return 2.0 * np.pi * SPEED_OF_LIGHT / np.asarray(wavelength, dtype=float)


def decay_rate(wavelength, quality_factor):
    """Optical amplitude decay rate κ = ω_c/Q, rad/s."""
    return cavity_frequency(wavelength) / quality_factor


def single_photon_coupling(wavelength, radius, mass, omega_m):
    """G₀ = (ω_c/R)·sqrt(ħ/(m ω_m)), rad/s (text under Eq. (2))."""
    return cavity_frequency(wavelength) / radius * np.sqrt(HBAR / (np.asarray(mass) * omega_m))


def drive_amplitude(wavelength, quality_factor, power):
    """ε = sqrt(2κP/(ħω_l)) with ω_l ≈ ω_c, sqrt(rad/s) (text under Eq. (2))."""
    omega_c = cavity_frequency(wavelength)
    return np.sqrt(2.0 * (omega_c / quality_factor) * np.asarray(power) / (HBAR * omega_c))


def thermal_occupation(omega_m, temperature):
    """Mean thermal phonon number n_m = 1/(exp(ħω_m/k_B T) − 1), text under Eq. (4); 0 at T = 0."""
    temperature = np.asarray(temperature, dtype=float)
    with np.errstate(divide="ignore", over="ignore"):
        x = HBAR * np.asarray(omega_m) / (BOLTZMANN * temperature)
        return 1.0 / np.expm1(x)


def sagnac_shift(Omega, refractive_index, radius, wavelength, dn_dlambda):
    """Signed Sagnac–Fizeau shift Δ_F = Ω (n R ω_c/c)(1 − 1/n² − (λ/n) dn/dλ), rad/s (Eq. (1))."""
    n = np.asarray(refractive_index, dtype=float)
    factor = n * radius * cavity_frequency(wavelength) / SPEED_OF_LIGHT
    return np.asarray(Omega) * factor * (1.0 - 1.0 / n**2 - wavelength / n * np.asarray(dn_dlambda))


# Allowed ranges, name → (operator, bound): the one home of these ranges (Device checks them; the scenario
# schema, sde_com.runs.schema, reads them for its [model] keys). Parameters not listed take any finite value.
PARAMETER_BOUNDS: dict[str, tuple[str, float]] = {
    **{name: (">", 0.0) for name in ("refractive_index", "mass", "radius", "wavelength", "quality_factor",
                                     "omega_m", "gamma_m")},
    "temperature": (">=", 0.0),
    "power": (">=", 0.0),
}


@dataclass(frozen=True, kw_only=True)
class Device:
    """The paper's device, bath, drive and spin (defaults: docs/physics.md table).

    Attributes (SI units; rates in rad/s):
        refractive_index: n of the resonator material (> 1 for a Sagnac shift of the paper's sign).
        mass: effective mass m of the breathing mode, kg.
        radius: resonator radius R, m.
        wavelength: vacuum wavelength λ of the cavity resonance, m.
        quality_factor: optical Q = ω_c/κ.
        omega_m: mechanical angular frequency ω_m, rad/s.
        gamma_m: mechanical damping rate γ_m, rad/s.
        dn_dlambda: material dispersion dn/dλ in Eq. (1), 1/m (the paper calls it small; default 0).
        temperature: bath temperature T, K.
        power: drive power P, W.
        Omega: angular velocity of the spin, rad/s (> 0: clockwise, docs/physics.md "Directions").
        J: backscattering coupling between the two counter-propagating modes, rad/s.
    """

    refractive_index: float = 1.48
    mass: float = 1e-11
    radius: float = 1.1e-3
    wavelength: float = 1.55e-6
    quality_factor: float = 3.2e7
    omega_m: float = 6.3e7
    gamma_m: float = 5.2e3
    dn_dlambda: float = 0.0
    temperature: float = 0.13
    power: float = 20e-3
    Omega: float = 0.0
    J: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{f.name} must be a real number, got {value!r}")
            if not math.isfinite(value):
                raise UserError(f"{f.name} must be finite, got {value!r}")
            object.__setattr__(self, f.name, float(value))
        for name, (op, bound) in PARAMETER_BOUNDS.items():
            value = getattr(self, name)
            if not (value > bound if op == ">" else value >= bound):
                raise UserError(f"{name} must be {op} {bound:g}, got {value!r}")

    # Derived constants -------------------------------------------------------------------------

    @property
    def omega_c(self) -> float:
        """Cavity resonance ω_c = 2πc/λ of the resting resonator, rad/s."""
        return float(cavity_frequency(self.wavelength))

    @property
    def kappa(self) -> float:
        """Optical amplitude decay rate κ = ω_c/Q, rad/s (the κ of Eq. (3))."""
        return self.omega_c / self.quality_factor

    @property
    def G0(self) -> float:
        """Single-photon optomechanical coupling G₀ = (ω_c/R)·sqrt(ħ/(m ω_m)), rad/s (text under Eq. (2))."""
        return float(single_photon_coupling(self.wavelength, self.radius, self.mass, self.omega_m))

    @property
    def epsilon(self) -> float:
        """Drive amplitude ε = sqrt(2κP/(ħω_l)) with ω_l ≈ ω_c, in sqrt(rad/s) (text under Eq. (2))."""
        return float(drive_amplitude(self.wavelength, self.quality_factor, self.power))

    @property
    def n_thermal(self) -> float:
        """Thermal phonon number n_m at the bath temperature (text under Eq. (4))."""
        return float(thermal_occupation(self.omega_m, self.temperature))

    @property
    def sagnac_shift(self) -> float:
        """Signed Sagnac–Fizeau shift Δ_F(Ω) of Eq. (1), rad/s; the CCW mode sits at ω_c + Δ_F."""
        return float(sagnac_shift(self.Omega, self.refractive_index, self.radius, self.wavelength,
                                  self.dn_dlambda))

    def as_dict(self) -> dict[str, float]:
        """All parameters by name (SI, rad/s)."""
        return asdict(self)


DEVICE_PARAMETERS: tuple[str, ...] = tuple(f.name for f in fields(Device))

# (UDUNITS units, description) of every sweep parameter: the coordinates' attrs (via sde_com.results.catalogue) and
# error messages. Units None: a string label, without units.
PARAMETER_INFO: dict[str, tuple[str | None, str]] = {
    "refractive_index": ("1", "refractive index n"),
    "mass": ("kg", "effective mass m"),
    "radius": ("m", "resonator radius R"),
    "wavelength": ("m", "vacuum wavelength λ"),
    "quality_factor": ("1", "optical quality factor Q = ω_c/κ"),
    "omega_m": ("rad s-1", "mechanical angular frequency ω_m"),
    "gamma_m": ("rad s-1", "mechanical damping rate γ_m"),
    "dn_dlambda": ("m-1", "material dispersion dn/dλ"),
    "temperature": ("K", "bath temperature T"),
    "power": ("W", "drive power P"),
    "Omega": ("rad s-1", "angular velocity of the spin Ω (> 0: clockwise)"),
    "J": ("rad s-1", "backscattering coupling J"),
    "detuning": ("1", "Δ_c/ω_m, cavity-laser detuning Δ_c = ω_c − ω_l in units of ω_m"),
    "direction": (None, "input direction: 'ccw' (driven from the left) or 'cw' (from the right)"),
}

DIRECTIONS: tuple[str, ...] = ("ccw", "cw")


def mode_detunings(delta_c: float, sagnac_shift: float, direction: str) -> tuple[float, float]:
    """Detunings (Δ_U, Δ_V) of the driven and the reflected mode, rad/s (docs/physics.md "Directions").

    ccw: Δ_U = Δ_c + Δ_F, Δ_V = Δ_c − Δ_F;  cw: the signs of Δ_F swap.
    """
    sign = direction_sign(direction)
    return delta_c + sign * sagnac_shift, delta_c - sign * sagnac_shift


def direction_sign(direction: str) -> float:
    """+1 for 'ccw', −1 for 'cw': the sign with which Δ_F enters the driven mode's detuning."""
    if direction == "ccw":
        return 1.0
    if direction == "cw":
        return -1.0
    raise UserError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
