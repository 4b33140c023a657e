"""The periodic steady state of a modulated system (``[periodic]``; ``physics.floquet``) as a Dataset: the
covariance and E_N over the modulation's phase, their period average and maximum, the Floquet multipliers and
the stability they decide, point by point over the system's parameter grid."""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import xarray as xr

from sde_com.errors import UserError
from sde_com.kernel_cache import announce_compile, periodic_modules
from sde_com.physics.floquet import SampledModel, limit_cycle, periodic_state
from sde_com.physics.gaussian import logneg_rows_packed, pair_rows
from sde_com.physics.system import LinearSystem, pair_labels, require
from sde_com.results.catalogue import apply_catalogue, dims_in, variables_of
from sde_com.results.sweep import DEFAULT_SYSTEM, annotate, as_system, parameter_grid


def drive_model(system: LinearSystem, params, drive, samples: int | None = None):
    """A(t), D of ``system`` (nonlinear mean-field dynamics) linearized along the limit cycle of its mean field
    under the periodic ``drive`` (a ``Drive`` of kind 'sine': s(τ) = 1 + depth sin(frequency τ + phase)), in the
    scaled time; the cycle found by shooting from the unmodulated drive's first steady branch
    (``floquet.limit_cycle``: checked periodic and attracting, or refused naming why). With ``samples``, also the
    mean field's observables (the system's ``MeanFieldDynamics.observables``) at the phases 2πk/samples:
    (model, {name: (samples,)})."""
    require(system, "mean_field_dynamics", "periodic state under a drive")
    if getattr(drive, "kind", None) != "sine":
        raise UserError(f"drive.kind = {getattr(drive, 'kind', None)!r} is not periodic: [periodic] takes a drive of "
                        "kind 'sine' (1 + depth sin(frequency τ + phase))")
    if not drive.frequency > 0:
        raise UserError(f"drive.frequency must be > 0 for a periodic state (its period is 2π/frequency), got "
                        f"{drive.frequency!r}")
    dynamics = system.mean_field_dynamics(params)
    first = system.branches(params)[0]
    period = 2 * math.pi / drive.frequency

    def rhs(tau, z):
        return dynamics.rhs(tau, z, float(drive.envelope(tau)))

    _, cycle = limit_cycle(rhs, dynamics.steady_state(first), period, label=f"the mean field of {system.name}")
    model = SampledModel(period, lambda tau: dynamics.drift(cycle(tau % period)),
                         first.diffusion / system.reference_rate(params))
    if samples is None:
        return model
    return model, dynamics.observables(cycle(period * np.arange(samples) / samples))


def periodic_point(system: LinearSystem, params, samples: int, drive=None) -> dict:
    """The periodic state (Eqs. (P1)–(P4), scaled time τ = ω_ref t) of ``system`` at one point ``params``: of its
    modulation, or (``drive``) linearized along its mean field's limit cycle under a periodic drive."""
    omega_ref = system.reference_rate(params)
    if drive is not None:
        model, observed = drive_model(system, params, drive, samples)
    else:
        model, observed = system.periodic_modulation(params).scaled(omega_ref), {}
    state = periodic_state(model, samples)
    d, n = system.dimension, len(system.modes)
    pairs = list(itertools.combinations(range(n), 2))
    cov = state.cov if state.stable else np.full((samples, d, d), np.nan)
    upper = np.triu_indices(d)
    packed = np.ascontiguousarray(cov[:, upper[0], upper[1]])  # E_N of every phase at once (NaN where unstable)
    en = np.array([logneg_rows_packed(packed, d, np.array(pair_rows(i, j, n), dtype=np.int64))
                   for i, j in pairs]).T
    return {"cov_periodic": cov, "logneg_periodic": en.reshape(samples, len(pairs)),
            "logneg_periodic_mean": en.mean(axis=0) if pairs else np.zeros(0),
            "logneg_periodic_max": en.max(axis=0) if pairs else np.zeros(0),
            "floquet_multiplier": np.abs(state.multipliers), "floquet_multiplier_phase": np.angle(state.multipliers),
            "stable_periodic": np.bool_(state.stable), "growth_rate": state.growth_rate,
            "modulation_frequency": 2 * math.pi / model.period * omega_ref,
            **{name: np.asarray(v, dtype=float) for name, v in observed.items() if name in MEAN_FIELD}}


# the mean field's values along a periodic drive's limit cycle: the periodic set's variables over `phase` alone
MEAN_FIELD = tuple(v for v in variables_of("periodic") if dims_in(v, "periodic")[1:] == ("phase",))
_DIMS = {"cov_periodic": ("phase", "row", "col"), "logneg_periodic": ("phase", "pair"),
         "logneg_periodic_mean": ("pair",), "logneg_periodic_max": ("pair",), "floquet_multiplier": ("multiplier",),
         "floquet_multiplier_phase": ("multiplier",), "stable_periodic": (), "growth_rate": (),
         "modulation_frequency": (),
         **{name: ("phase",) for name in MEAN_FIELD}}


def periodic_sweep(samples: int = 64, *, drive=None, system: LinearSystem | str = DEFAULT_SYSTEM,
                   **params) -> xr.Dataset:
    """The periodic steady state of a modulated ``system`` (an instance or a registered name: with the capability
    'periodic', a ``MatrixSystem`` given a modulation or a ``HamiltonianSystem`` periodic in the time t; or, with
    ``drive``, a system with nonlinear mean-field
    dynamics under a periodic ``sde_com.Drive`` of kind 'sine', linearized along its mean field's limit cycle)
    at ``samples`` phases 2πk/samples of the modulation (from its t = 0), at every point of the parameter grid
    ``params`` (as ``sweep``'s)."""
    system = as_system(system)
    if drive is None:
        require(system, "periodic", "periodic steady state")
    elif "periodic" in system.capabilities:
        raise UserError("a modulated system takes no drive: its modulation is the periodic part")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 4 <= samples <= 4096:
        raise UserError(f"periodic.samples must be an integer from 4 to 4096, got {samples!r}")
    values, dims, shape, _ = parameter_grid(params, system)
    announce_compile(periodic_modules(system, drive=drive is not None))
    def at(flat: int) -> dict:
        index = np.unravel_index(flat, shape) if shape else ()
        point = {**{k: v for k, v in params.items() if k not in dims}, **{d: values[d][i] for d, i in
                                                                           zip(dims, index, strict=True)}}
        return periodic_point(system, system.resolve(point), int(samples), drive)

    # the points on Numba's threads (the Magnus kernel releases the GIL); each point alone: the same bits. A point
    # that fails (or Ctrl-C) cancels those not started rather than waiting for the whole grid
    pool = ThreadPoolExecutor(max_workers=numba.get_num_threads())
    try:
        points = list(pool.map(at, range(math.prod(shape))))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    data = {name: ((*dims, *vd), np.stack([p[name] for p in points]).reshape((*shape, *np.shape(points[0][name]))))
            for name, vd in _DIMS.items() if name in points[0]}
    quad = list(system.quadratures)
    pairs = pair_labels(system.modes)
    ds = xr.Dataset(data, coords={"phase": ("phase", 2 * np.pi * np.arange(samples) / samples), "row": quad,
                                  "col": quad, "pair": np.array(pairs, dtype=str),  # strings even when empty
                                  "multiplier": np.arange(system.dimension, dtype=np.int32),
                                  **{d: values[d] for d in dims}})
    annotate(ds, values, dims, system.quadratures)
    ds = apply_catalogue(ds, title=f"sde_com periodic steady state of {system.name}", system=system)
    ds.attrs["samples"] = int(samples)
    return ds
