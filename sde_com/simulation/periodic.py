"""Transients of a modulated system in the time domain (``physics.floquet``; [simulate] on a modulated [system],
``sde_com.simulate``): A(t) and D(t) frozen in each step at the scheme's time (the exact map: the midpoint; as a
drive's, ``simulation.drive``; error O(dt²) in their variation), from a given covariance or the periodic state
itself, so that the periodic state can be checked against trajectories. Times in units of 1/ω_ref."""

from __future__ import annotations

import json

import numpy as np

from sde_com.errors import NumericalError, UserError
from sde_com.kernel_cache import VARYING_MODULES, announce_compile, periodic_modules
from sde_com.physics.floquet import Modulation, periodic_state
from sde_com.physics.system import LinearSystem, require
from sde_com.results.sweep import as_system
from sde_com.simulation.drive import check_settings, moment_ode, varying_dataset
from sde_com.simulation.keys import MAX_PHASE_STEP


def check_transient(system: LinearSystem, params, settings) -> Modulation:
    """What a modulated transient needs, checked before any work (UserError naming the key): the step resolves the
    modulation's fastest harmonic (K Ω dt <= MAX_PHASE_STEP: A(t) is frozen in each step), and the initial state
    exists ('thermal': the system's thermal state). Returns the modulation in units of ω_ref."""
    params = system.resolve(params)
    mod = system.periodic_modulation(params).scaled(system.reference_rate(params))
    harmonics = max(mod.harmonics, 1)
    fastest = harmonics * mod.frequency
    if fastest * settings.dt > MAX_PHASE_STEP:
        raise UserError(f"simulate.dt = {settings.dt:g} is too long for the modulation: its fastest harmonic "
                        f"({harmonics} × Ω = {fastest:.4g} ω_ref) turns {fastest * settings.dt:.3g} rad a step, at "
                        f"most {MAX_PHASE_STEP} (A(t) is frozen within each step); use dt <= "
                        f"{MAX_PHASE_STEP / fastest:.4g}")
    if isinstance(settings.initial, str) and settings.initial == "thermal":
        try:
            system.thermal_covariance(params)
        except UserError as exc:
            raise UserError(f"simulate.initial = 'thermal': {exc}") from None
    return mod


def modulated_dataset(system: LinearSystem | str, params, settings, samples: int = 64):
    """A transient of a modulated ``system`` (capability 'periodic') under the [simulate] ``settings``: the
    ensemble and the moment ODE of Eq. (P1) from the initial state (``varying_dataset``), beside the periodic
    steady state at the same times (``cov_periodic_ref``: Eq. (P1) integrated from the periodic V(0) of Eq. (P3),
    found at ``samples`` phases) and the ensemble's z-scores against it. ``initial = 'steady'`` starts from the
    periodic state at the modulation's t = 0; 'thermal' needs a system with a thermal state."""

    from sde_com.results.catalogue import apply_catalogue
    from sde_com.simulation.ensemble import AllPairs, initial_covariance, reported_entanglement
    from sde_com.simulation.estimators import zscores

    s = settings
    check_settings(s, periodic=True)
    system = as_system(system)
    require(system, "periodic", "modulated transient")
    if any(np.ndim(v) for v in params.values()):
        raise UserError("a modulated system's transient runs at one point: every parameter must be a scalar")
    announce_compile(periodic_modules(system) + VARYING_MODULES)
    params = system.resolve(params)
    omega_ref = system.reference_rate(params)
    mod = check_transient(system, params, s)
    starts_periodic = isinstance(s.initial, str) and s.initial == "steady"
    try:
        state = periodic_state(mod, samples)
    except NumericalError:
        if starts_periodic:
            raise
        state = None  # the transient runs without it: its periodic references are NaN
    d = system.dimension
    V_start = None if state is None or state.cov is None else state.cov[0]
    if starts_periodic and V_start is None:
        raise UserError(f"initial = 'steady': the modulated system is unstable (growth rate {state.growth_rate:.4g} "
                        "ω_ref, a Floquet multiplier |μ| >= 1), so it has no periodic state to start from")
    V0 = initial_covariance(s.initial, V_start, lambda: system.thermal_covariance(params), d)
    ds = varying_dataset(system, s, lambda tau: mod.at(tau), V0, omega_ref, {}, period=mod.period)
    times = ds["time_scaled"].values
    if V_start is None:
        periodic = np.full((times.size, d, d), np.nan)
    else:
        periodic = moment_ode(lambda tau: mod.at(tau), V_start, times)
    _, zmax = zscores(ds["cov_sim"].values, ds["cov_sim_err"].values, periodic)
    reported = reported_entanglement(system)
    pairs = reported.pairs if isinstance(reported, AllPairs) else [reported]
    en = np.array([[p(v) for p in pairs] for v in periodic]) if V_start is not None else np.full(
        (times.size, len(pairs)), np.nan)
    ds = ds.assign(cov_periodic_ref=(("time", "row", "col"), periodic), zscore_periodic_max=("time", zmax),
                   logneg_periodic_ref=(ds["logneg_ref"].dims, en.reshape(ds["logneg_ref"].shape)))
    ds.attrs["parameters"] = json.dumps(params)
    ds.attrs["samples"] = int(samples)
    return apply_catalogue(ds, title=f"sde_com transient of the modulated {system.name}", system=system)
