"""Time-dependent drives: the mean fields follow the nonlinear mean-field equations and the fluctuations
du = A(t) u dt + dW with A(t) built from the mean fields at each step, for any system with the capability
``"mean_field_dynamics"`` (its ``MeanFieldDynamics``: the built-in resonator's and single cavity's).
Times are in units of 1/ω_ref (ω_m for both built-in systems) unless a name says seconds.

For the spinning resonator (Eq. (3) without the noises, corrected in docs/physics.md; Eq. (6) for A), the
dimensionless mean-field variables (the ODE is integrated in them): x_j = α_j ω_m/ε (amplitude of mode j
per unit drive), y = G₀q/ω_m (the optomechanical frequency shift), P = G₀p/ω_m. With δ_j = Δ_j/ω_m,
k = κ/ω_m, j = J/ω_m, g = γ_m/ω_m, c = G₀²ε²/ω_m⁴ and s(τ) the drive envelope, Eq. (3) reads
    x_U' = −(iδ_U + k) x_U − i j x_V + i y x_U + s(τ),   x_V' = −(iδ_V + k) x_V − i j x_U + i y x_V,
    y' = P,   P' = −y − g P + c (|x_U|² + |x_V|²).
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr

from sde_com.errors import NumericalError, UserError
from sde_com.inputs import MAX_DRIVE_FILE_BYTES, check_input_file
from sde_com.kernel_cache import ENSEMBLE_MODULES, announce_compile
from sde_com.kernels import ensemble as kernels
from sde_com.physics.system import LinearSystem, MeanFieldDynamics, require
from sde_com.random import INITIAL_STREAM, sample_gaussian
from sde_com.results.catalogue import (
    apply_catalogue,
    set_time_reference,
    time_coordinates,
)
from sde_com.results.sweep import DEFAULT_SYSTEM, as_system
from sde_com.simulation.ensemble import AllPairs, initial_covariance, reported_entanglement, reported_pairs
from sde_com.simulation.estimators import N_JACKKNIFE_GROUPS, covariance_factor, group_means, jackknife, zscores
from sde_com.simulation.keys import DRIVE
from sde_com.simulation.schemes import Scheme
from sde_com.simulation.settings import SimulationSettings
from sde_com.spec import check_fields

DRIVE_KINDS = DRIVE.keys["kind"].choices


def _default(key: str):
    return DRIVE.keys[key].default


@dataclass(frozen=True, kw_only=True)
class Drive:
    """Envelope s(τ) of the drive amplitude, ε(t) = s(ω_ref t)·ε of the system's drive power (times in 1/ω_ref,
    ω_m for the built-in systems).

    constant: s = 1.  ramp: switch-on at ``start`` with a half-cosine rise over ``rise_time``.
    pulse: Gaussian of centre ``start`` and standard deviation ``width``.
    sine: s = 1 + depth·sin(frequency·τ + phase) (frequency in units of ω_ref).
    samples: linear interpolation of ``values`` at ``times`` (held constant outside).
    """

    # defaults, types and ranges: the [drive] table of sde_com.simulation.keys
    kind: str = _default("kind")
    start: float = _default("start")
    rise_time: float = _default("rise_time")
    width: float = _default("width")
    depth: float = _default("depth")
    frequency: float = _default("frequency")
    phase: float = _default("phase")
    times: tuple[float, ...] = _default("times")
    values: tuple[float, ...] = _default("values")

    def __post_init__(self):
        check_fields(self, DRIVE, prefix="drive ")  # each field's type, range, choices
        if self.kind == "samples":
            t, v = np.asarray(self.times, float), np.asarray(self.values, float)
            if t.ndim != 1 or t.size < 2 or t.shape != v.shape or np.any(np.diff(t) <= 0) or not (
                    np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
                raise UserError("drive samples need ≥ 2 finite, strictly increasing times and as many values")

    def envelope(self, tau):
        """s(τ) for scalar or array τ (units of 1/ω_ref)."""
        tau = np.asarray(tau, dtype=float)
        if self.kind == "constant":
            return np.ones_like(tau)
        if self.kind == "ramp":
            x = np.clip((tau - self.start) / self.rise_time, 0.0, 1.0)
            return 0.5 * (1.0 - np.cos(np.pi * x))
        if self.kind == "pulse":
            return np.exp(-0.5 * ((tau - self.start) / self.width) ** 2)
        if self.kind == "sine":
            return 1.0 + self.depth * np.sin(self.frequency * tau + self.phase)
        return np.interp(tau, self.times, self.values)


def mean_field_trajectory(system: LinearSystem | str, params, drive: Drive, t_end: float,
                          z0: np.ndarray | None = None):
    """Integrate a system's mean-field equations (its ``mean_field_dynamics``; the resonator's: Eq. (3) with the
    noises dropped) with the envelope s(τ) of ``drive`` from τ = 0 to t_end (units of 1/ω_ref).

    ``z0``: the initial real mean-field state (default zero: the resonator's empty cavity and mechanics at
    rest, a switch-on). Returns scipy's dense solution and the dynamics (its ``drift`` gives A/ω_ref).
    """
    system = as_system(system)
    params = system.resolve(params)
    dynamics = system.mean_field_dynamics(params)
    if z0 is None:
        z0 = np.zeros(dynamics.steady_state(system.branches(params)[0]).size)
    return _integrate(dynamics, drive, t_end, np.asarray(z0, dtype=float), params), dynamics


def _integrate(dynamics: MeanFieldDynamics, drive: Drive, t_end: float, z0: np.ndarray, params):
    """scipy's dense solution of dz/dτ = rhs(τ, z, s(τ)) from z0 over [0, t_end] (τ = ω_ref t)."""
    def rhs(tau, z):
        return dynamics.rhs(tau, z, float(drive.envelope(tau)))

    # max_step: resolve the drive's own time scales (a ramp or pulse the adaptive stepper could jump over)
    max_step = min(1.0, drive.rise_time / 10, drive.width / 10)
    import scipy.integrate  # lazily: only driven runs integrate (scipy.integrate ~0.1 s to import)

    sol = scipy.integrate.solve_ivp(rhs, (0.0, t_end), z0, method="DOP853", rtol=1e-11, atol=1e-12,
                                    dense_output=True, max_step=max_step)
    if not sol.success:
        raise NumericalError(f"mean-field integration failed at {dict(params)}: {sol.message}")
    return sol.sol


def step_maps_varying(model_at, dt: float, n_steps: int, scheme: Scheme):
    """Per-step (F_n, L_n) of the scheme with A(t), D(t) (``model_at(τ)`` → (A, D), scaled time) frozen in each
    step at the scheme's ``drift_time``: Euler–Maruyama with them at the step's start, the exact map at the step's
    midpoint (error O(dt²) in their variation). Returns arrays (n_steps, d, d), d = 2N."""
    Fs = Ls = None
    for n in range(n_steps):
        F, L = scheme.step(*model_at((n + scheme.drift_time) * dt), dt)
        if Fs is None:
            Fs, Ls = np.empty((n_steps, *F.shape)), np.empty((n_steps, *L.shape))
        Fs[n], Ls[n] = F, L
    return np.ascontiguousarray(Fs), np.ascontiguousarray(Ls)


def drive_model(sol, dynamics: MeanFieldDynamics, D_s: np.ndarray):
    """τ → (A(τ), D) about the mean fields of the dense solution ``sol`` (Eq. (6); D does not depend on them)."""
    return lambda tau: (dynamics.drift(sol(tau)), D_s)


def discrete_moments_varying(Fs: np.ndarray, Ls: np.ndarray, V0: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Covariances V_m = F_m V_{m−1} F_mᵀ + L_m L_mᵀ of the time-dependent recursion from V0, at the given
    (sorted) step numbers: what the scheme itself samples (the reference of the z-scores)."""
    V_disc = np.empty((steps.size, *V0.shape))
    V = V0.copy()
    k = 0
    for m in range(Fs.shape[0] + 1):
        while k < steps.size and steps[k] == m:
            V_disc[k] = V
            k += 1
        if m < Fs.shape[0]:
            V = Fs[m] @ V @ Fs[m].T + Ls[m] @ Ls[m].T
    return V_disc


def moment_ode(model_at, V0: np.ndarray, times: np.ndarray) -> np.ndarray:
    """V(t) from dV/dt = A(t)V + VA(t)ᵀ + D(t) (Eq. (P1); ``model_at(τ)`` → (A, D)) integrated deterministically
    (DOP853, relative 1e-10): the reference of transients."""
    d = V0.shape[0]

    def rhs(tau, v):
        V = v.reshape(d, d)
        A, D = model_at(tau)
        return (A @ V + V @ A.T + D).ravel()

    import scipy.integrate  # lazily (see mean_field_trajectory)

    out = scipy.integrate.solve_ivp(rhs, (0.0, float(times[-1])), V0.ravel(), method="DOP853", t_eval=times,
                                    rtol=1e-10, atol=1e-12 * max(1.0, np.abs(V0).max()), max_step=1.0)
    V = out.y.T.reshape(-1, d, d)
    return 0.5 * (V + np.swapaxes(V, 1, 2))


# data variables of a driven run (drive_dataset; units and meaning: sde_com.results.catalogue)
DRIVE_KEYS = tuple(DRIVE.keys)  # the Drive fields, + file, + mean_field_start


def load_samples(path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(times, values) of a drive envelope from a text file of two columns: τ (units of 1/ω_ref) and s(τ)."""
    check_input_file(path, "drive file", MAX_DRIVE_FILE_BYTES)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # numpy's "input contained no data": an error here
            data = np.loadtxt(path, ndmin=2, comments="#", delimiter=None)
    except (OSError, ValueError, UserWarning) as exc:
        raise UserError(f"drive file {str(path)!r}: {exc}") from exc
    if data.shape[1] != 2:
        raise UserError(f"drive file {str(path)!r} must have two columns (time in 1/ω_ref, envelope)")
    return tuple(data[:, 0].tolist()), tuple(data[:, 1].tolist())


def check_settings(settings: SimulationSettings, periodic: bool = False) -> None:
    """What a driven (or modulated) run asks of its [simulate] settings, checked before any work: snapshots, no
    traces (it records none), and an initial state that means something under a changing drive ('steady' does
    under a modulation: the periodic state, ``periodic``)."""
    if not settings.transient:
        raise UserError("a driven or modulated run is a transient: give save_times or save_every")
    if settings.traces:
        raise UserError(f"traces = {settings.traces}: a driven or modulated run records no traces (its estimates "
                        "are over the snapshots); leave traces out")
    if isinstance(settings.initial, str) and settings.initial == "steady" and not periodic:
        raise UserError("initial = 'steady' has no meaning under a changing drive: use 'thermal', 'zero' or a "
                        "covariance")


def drive(settings: SimulationSettings, envelope: Drive, *, system: LinearSystem | str = DEFAULT_SYSTEM,
          mean_field_start: str = "empty", **params) -> xr.Dataset:
    """A transient of any system with nonlinear mean-field dynamics (``system``: an instance or a registered
    name) under the time-dependent drive ``envelope``, at one point of its parameters ``params`` (scalars):
    ``drive_dataset``. Public as ``sde_com.drive``."""
    return drive_dataset(system, params, envelope, settings, mean_field_start)


def drive_dataset(system: LinearSystem | str, params, drive: Drive, settings: SimulationSettings,
                  mean_field_start: str = "empty") -> xr.Dataset:
    """A transient under a time-dependent drive, for any system with nonlinear mean-field dynamics (capability
    ``"mean_field_dynamics"``): mean fields (the system's ``observables``), ensemble V(t) and E_N(t) with
    errors (the resonator's: of U and the mechanics; another system's: of every pair of modes, over ``pair``),
    against the moment ODE dV/dt = A(t)V + VA(t)ᵀ + D (and, for z-scores, the
    discrete moments of the scheme itself).

    ``mean_field_start``: "empty" (cavity empty, mechanics at rest: a switch-on) or "steady" (the first
    branch at the full drive). ``settings`` must ask for snapshots (save_times or save_every).
    """
    s = settings
    check_settings(s)
    if mean_field_start not in ("empty", "steady"):
        raise UserError(f"mean_field_start must be 'empty' or 'steady', got {mean_field_start!r}")
    system = as_system(system)
    require(system, "mean_field_dynamics", "drive")
    announce_compile((*system.kernel_modules, *ENSEMBLE_MODULES))
    params = system.resolve(params)
    dynamics = system.mean_field_dynamics(params)
    omega_ref, first = system.reference_rate(params), system.branches(params)[0]
    z_steady = dynamics.steady_state(first)
    z0 = z_steady if mean_field_start == "steady" else np.zeros(z_steady.size)
    sol = _integrate(dynamics, drive, s.n_steps * s.dt, z0, params)
    V0 = initial_covariance(s.initial, None, functools.partial(system.thermal_covariance, params), system.dimension)
    times = s.snapshot_steps * s.dt
    own = {"drive": ("time", drive.envelope(times)),
           **{name: ("time", values) for name, values in dynamics.observables(sol(times)).items()}}
    ds = varying_dataset(system, s, drive_model(sol, dynamics, first.diffusion / omega_ref), V0, omega_ref, own)
    ds.attrs["parameters"] = json.dumps(params)
    return apply_catalogue(ds, title="sde_com time-dependent drive", system=system)


def varying_dataset(system: LinearSystem, s: SimulationSettings, model_at, V0: np.ndarray, omega_ref: float,
                    own: dict, period: float | None = None) -> xr.Dataset:
    """An ensemble under A(t), D(t) (``model_at(τ)`` → (A, D), scaled time τ = ω_ref t) from N(0, V0), saved at
    the settings' snapshots: V(t) and E_N(t) with their errors, against the moment ODE dV/dt = A(t)V + VA(t)ᵀ +
    D(t) (``cov_ref``) and, for the z-scores, the discrete moments of the scheme itself; ``own``: the run's
    other variables (name → (dims, values)); ``period``: A(t), D(t) repeat with it (a modulation), so where it
    holds a whole number of steps the maps of one period serve every one. Not yet through the catalogue."""
    per = None if period is None else round(period / s.dt)
    if per is not None and abs(per * s.dt - period) <= 1e-12 * period and 0 < per < s.n_steps:
        Fs, Ls = (np.ascontiguousarray(np.resize(m, (s.n_steps, *m.shape[1:])))
                  for m in step_maps_varying(model_at, s.dt, per, s.scheme))
    else:
        Fs, Ls = step_maps_varying(model_at, s.dt, s.n_steps, s.scheme)
    s.scheme.check_varying_dt(Fs, s.dt)  # EM: |1 + λ dt| < 1 wherever A(t) itself is stable
    steps = s.snapshot_steps
    C0 = np.ascontiguousarray(covariance_factor(V0))
    u0 = sample_gaussian(C0, s.seed, 0, s.trajectories, INITIAL_STREAM)
    snaps = kernels.run_ensemble_varying(Fs, Ls, u0, s.seed, 0, steps)
    n = s.trajectories
    outer = snaps[:, :, :, None] * snaps[:, :, None, :]
    V_sim = outer.mean(axis=0)
    err = outer.std(axis=0, ddof=1) / math.sqrt(n)
    V_disc = discrete_moments_varying(Fs, Ls, V0, steps)
    times = steps * s.dt
    V_ode = moment_ode(model_at, V0, times)
    _, zmax = zscores(V_sim, err, V_disc)
    groups, weights = group_means(outer, N_JACKKNIFE_GROUPS)

    reported = reported_entanglement(system)  # Eq. (12) of each pair the run reports
    one = not isinstance(reported, AllPairs)  # one pair: no pair dimension (NaN for a single mode)
    pairs = [reported] if one else reported.pairs
    en = np.array([[jackknife(groups[:, t], weights, p) for p in pairs] for t in range(times.size)])
    en_ref = np.array([[p(v) for p in pairs] for v in V_ode])
    e_dims = ("time",) if one else ("time", "pair")
    if one:
        en, en_ref = en[:, 0], en_ref[:, 0]
    ds = xr.Dataset(
        {
            **own,
            "logneg_sim": (e_dims, en[..., 0]),
            "logneg_sim_err": (e_dims, en[..., 1]),
            "logneg_ref": (e_dims, en_ref),
            "cov_sim": (("time", "row", "col"), V_sim),
            "cov_sim_err": (("time", "row", "col"), err),
            "cov_ref": (("time", "row", "col"), V_ode),
            "zscore_max": ("time", zmax),
        },
        coords=dict(**time_coordinates(times, omega_ref), row=list(system.quadratures),
                    col=list(system.quadratures),
                    **({} if one else {"pair": reported_pairs(system)})),
    )
    set_time_reference(ds, omega_ref)
    return ds
