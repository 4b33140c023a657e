"""Ensembles of a modulated system in the time domain (``physics.floquet``): A(t) and D(t) frozen at each
step's midpoint in the exact step map (as a drive's, ``simulation.drive``; error O(dt²) in their variation),
from a given covariance or the periodic state itself, so that the periodic state can be checked against
trajectories. Times in units of 1/ω_ref; the period is split into ``samples`` sample intervals of ``substeps``
steps each."""

from __future__ import annotations

import math

import numpy as np

from sde_com.errors import UserError
from sde_com.kernel_cache import ENSEMBLE_MODULES, announce_compile
from sde_com.kernels import ensemble as kernels
from sde_com.physics.floquet import periodic_state
from sde_com.physics.linear import exact_step
from sde_com.physics.system import LinearSystem, require
from sde_com.random import INITIAL_STREAM, sample_gaussian
from sde_com.results.sweep import as_system
from sde_com.simulation.drive import discrete_moments_varying
from sde_com.simulation.estimators import covariance_factor


def modulated_ensemble(system: LinearSystem | str, *, trajectories: int, periods: int = 1, samples: int = 16,
                       substeps: int = 16, seed: int = 0, initial=None, **params) -> dict[str, np.ndarray]:
    """``trajectories`` of a modulated ``system`` (capability 'periodic') over ``periods`` periods, from the
    covariance ``initial`` (absent: the periodic state at phase 0, ``periodic_state``), saved at the phases
    2πk/samples: ``cov_sim`` (the ensemble's ⟨u uᵀ⟩, (periods·samples + 1, d, d)) with its standard error
    ``cov_sim_err``, the recursion's own moments ``cov_ref`` (exact for the frozen-midpoint steps) and the
    periodic state at the same phases ``cov_periodic`` (None when unstable), ``time`` (1/ω_ref)."""
    system = as_system(system)
    require(system, "periodic", "modulated ensemble")
    for name, value, low in (("trajectories", trajectories, 2), ("periods", periods, 1), ("samples", samples, 1),
                             ("substeps", substeps, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
    params = system.resolve(params)
    mod = system.periodic_modulation(params).scaled(system.reference_rate(params))
    state = periodic_state(mod, samples)
    if initial is None and state.cov is None:
        raise UserError("the modulated system is unstable (a Floquet multiplier |μ| >= 1): it has no periodic "
                        "state to start from; give an initial covariance")
    V0 = state.cov[0] if initial is None else np.asarray(initial, dtype=float)
    dt = mod.period / (samples * substeps)
    n_steps = periods * samples * substeps
    A, D = mod.at((np.arange(n_steps) + 0.5) * dt)
    maps = [exact_step(a, 0.5 * (q + q.T), dt) for a, q in zip(A, D, strict=True)]
    Fs = np.ascontiguousarray([f for f, _ in maps])
    Ls = np.ascontiguousarray([ell for _, ell in maps])
    steps = np.arange(0, n_steps + 1, substeps)
    announce_compile(ENSEMBLE_MODULES)
    u0 = sample_gaussian(np.ascontiguousarray(covariance_factor(V0)), seed, 0, trajectories, INITIAL_STREAM)
    snaps = kernels.run_ensemble_varying(Fs, Ls, u0, seed, 0, steps)
    outer = snaps[:, :, :, None] * snaps[:, :, None, :]
    periodic = None if state.cov is None else np.concatenate([np.tile(state.cov, (periods, 1, 1)), state.cov[:1]])
    return {"cov_sim": outer.mean(axis=0), "cov_sim_err": outer.std(axis=0, ddof=1) / math.sqrt(trajectories),
            "cov_ref": discrete_moments_varying(Fs, Ls, V0, steps), "cov_periodic": periodic,
            "time": steps * dt}
