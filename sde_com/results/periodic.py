"""The periodic steady state of a modulated system (``[periodic]``; ``physics.floquet``) as a Dataset: the
covariance and E_N over the modulation's phase, their period average and maximum, the Floquet multipliers and
the stability they decide, point by point over the system's parameter grid."""

from __future__ import annotations

import itertools
import math

import numpy as np
import xarray as xr

from sde_com.physics.floquet import periodic_state
from sde_com.physics.gaussian import logneg
from sde_com.physics.system import LinearSystem, require
from sde_com.results.catalogue import apply_catalogue
from sde_com.results.sweep import DEFAULT_SYSTEM, as_system, parameter_grid


def periodic_point(system: LinearSystem, params, samples: int) -> dict:
    """The periodic state (Eqs. (P1)–(P4), scaled time τ = ω_ref t) of ``system`` at one point ``params``."""
    omega_ref = system.reference_rate(params)
    state = periodic_state(system.periodic_modulation(params).scaled(omega_ref), samples)
    d, pairs = system.dimension, list(itertools.combinations(range(len(system.modes)), 2))
    cov = state.cov if state.stable else np.full((samples, d, d), np.nan)
    en = np.array([[logneg(V, i, j) for i, j in pairs] for V in cov]) if state.stable else np.full(
        (samples, len(pairs)), np.nan)
    return {"cov_periodic": cov, "logneg_periodic": en.reshape(samples, len(pairs)),
            "logneg_periodic_mean": en.mean(axis=0) if pairs else np.zeros(0),
            "logneg_periodic_max": en.max(axis=0) if pairs else np.zeros(0),
            "floquet_multiplier": np.abs(state.multipliers), "floquet_multiplier_phase": np.angle(state.multipliers),
            "stable": np.bool_(state.stable), "growth_rate": state.growth_rate}


_DIMS = {"cov_periodic": ("phase", "row", "col"), "logneg_periodic": ("phase", "pair"),
         "logneg_periodic_mean": ("pair",), "logneg_periodic_max": ("pair",), "floquet_multiplier": ("multiplier",),
         "floquet_multiplier_phase": ("multiplier",), "stable": (), "growth_rate": ()}


def periodic_sweep(samples: int = 64, *, system: LinearSystem | str = DEFAULT_SYSTEM, **params) -> xr.Dataset:
    """The periodic steady state of a modulated ``system`` (an instance or a registered name, with the
    capability 'periodic': a ``MatrixSystem`` given a modulation) at ``samples`` phases 2πk/samples of the
    modulation (from its t = 0), at every point of the parameter grid ``params`` (as ``sweep``'s)."""
    system = as_system(system)
    require(system, "periodic", "periodic steady state")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 4 <= samples <= 4096:
        from sde_com.errors import UserError

        raise UserError(f"periodic.samples must be an integer from 4 to 4096, got {samples!r}")
    values, dims, shape, _ = parameter_grid(params, system)
    points = []
    for flat in range(math.prod(shape)):
        index = np.unravel_index(flat, shape) if shape else ()
        point = {**{k: v for k, v in params.items() if k not in dims}, **{d: values[d][i] for d, i in
                                                                           zip(dims, index, strict=True)}}
        points.append(periodic_point(system, system.resolve(point), int(samples)))
    data = {name: ((*dims, *vd), np.stack([p[name] for p in points]).reshape((*shape, *np.shape(points[0][name]))))
            for name, vd in _DIMS.items()}
    quad = list(system.quadratures)
    pairs = [f"{system.modes[i]}-{system.modes[j]}" for i, j in itertools.combinations(range(len(system.modes)), 2)]
    ds = xr.Dataset(data, coords={"phase": ("phase", 2 * np.pi * np.arange(samples) / samples), "row": quad,
                                  "col": quad, "pair": pairs,
                                  "multiplier": np.arange(system.dimension, dtype=np.int32),
                                  **{d: values[d] for d in dims}})
    ds = apply_catalogue(ds, title=f"sde_com periodic steady state of {system.name}", system=system)
    ds.attrs["samples"] = int(samples)
    return ds
