"""A sweep's time-domain results as one Dataset: the steady-state sweep (the skeleton), then the estimates of
every (point, branch) (``ensemble.point_estimates`` of its folded statistics), with coordinates and attributes
from the catalogue (``sde_com.results.catalogue``). Times in the file: seconds (``time``) and ω_m·t
(``time_scaled``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import xarray as xr

from sde_com.errors import UserError
from sde_com.physics.model import points
from sde_com.physics.system import LinearSystem
from sde_com.results.catalogue import (
    RECORDED,
    apply_catalogue,
    set_time_reference,
    time_coordinates,
    variables_of,
)
from sde_com.results.sweep import DEFAULT_SYSTEM, Grid, as_system, fast_chain, same_system, steady_sweep
from sde_com.simulation.ensemble import (
    grid_points,
    reported_pairs,
    system_grid,
)
from sde_com.simulation.settings import SimulationSettings, settings_to_dict

# the time-domain data variables (their units and meaning: sde_com.results.catalogue)
SIM_VARIABLE_INFO: tuple[str, ...] = variables_of("simulate")

_MATRICES = ("cov_sim", "cov_sim_err", "cov_ref", "zscore")  # (…, row, col) at every point (and time)
_SCALARS = ("zscore_max", "logneg_sim", "logneg_sim_err", "logneg_ref")  # one value at every point (and time)
_PER_POINT = ("max_dt_em", "zscore_max_continuous")  # never along time
_LOGNEG = ("logneg_sim", "logneg_sim_err", "logneg_ref")  # over ``pair`` for a system of N ≥ 2 modes


def prepare_simulation(settings: SimulationSettings, params: dict,
                       system: LinearSystem | str = DEFAULT_SYSTEM) -> xr.Dataset:
    """Validate a sweep-wide run and return its steady-state sweep (the skeleton the results fill): a system
    with a steady-state chain (``sweep.fast_chain``) gets its whole sweep (``results.sweep.sweep``); any other
    system's skeleton holds ``stable``, ``n_branches`` and ``cov`` from ``physics.model.points``."""
    system = as_system(system)
    grid = params if isinstance(params, Grid) and same_system(params.system, system) else Grid(params, system)
    if (settings.transient or settings.traces) and len(reference_rates(system, grid)) > 1:
        raise UserError(f"the reference rate ω_ref of system {system.name!r} cannot vary over a run with snapshots "
                        "or traces: their time axis is in seconds")
    if fast_chain(system) is not None:
        return steady_sweep(grid, store_cov=True, revival=False)
    return _system_skeleton(system, grid)


def _system_skeleton(system: LinearSystem, params: dict) -> xr.Dataset:
    """``stable``, ``n_branches`` and ``cov`` (NaN where unstable) of every point and branch of a system."""
    values, dims, shape = system_grid(system, params)
    ops = [points(system, p) for p in grid_points(system, params)]
    n_b, dim = max(1, max(len(o) for o in ops)), system.dimension
    stable = np.zeros((len(ops), n_b), dtype=bool)
    cov = np.full((len(ops), n_b, dim, dim), np.nan)
    for i, branches in enumerate(ops):
        for b, op in enumerate(branches):
            stable[i, b] = op.stable
            if op.cov is not None:
                cov[i, b] = op.cov
    bdims = (*dims, "branch")
    ds = xr.Dataset({"stable": (bdims, stable.reshape((*shape, n_b))),
                     "n_branches": (tuple(dims), np.array([len(o) for o in ops], np.int32).reshape(shape)),
                     "cov": ((*bdims, "row", "col"), cov.reshape((*shape, n_b, dim, dim)))},
                    coords={**{d: values[d] for d in dims}, "branch": np.arange(n_b, dtype=np.int32),
                            "row": list(system.quadratures), "col": list(system.quadratures)})
    ds.attrs["parameters"] = json.dumps({k: (v.tolist() if k in dims else v[0].item()) for k, v in values.items()})
    return apply_catalogue(ds, title=f"sde_com steady state of {system.name}", system=system)  # coords: its Keys


def reference_rates(system: LinearSystem, params: dict) -> np.ndarray:
    """The distinct values of ω_ref over the grid, in the order first met (one where nothing it depends on is
    swept)."""
    def rates():
        return np.asarray(list(dict.fromkeys(system.reference_rate(system.resolve(p))
                                             for p in grid_points(system, params))))

    if isinstance(params, Grid) and same_system(params.system, system):
        return params.cached("reference_rates", rates)
    return rates()


def _empty_results(s: SimulationSettings, shape: tuple[int, ...], keep_traces: bool,
                   d: int = 6, n_pairs: int | None = None) -> dict[str, np.ndarray]:
    """NaN-filled arrays (sweep dims…, branch, [time], …) of every variable the run produces (d: 2N; n_pairs:
    E_N over that many pairs, None: one)."""
    tail = (s.snapshot_steps.size,) if s.transient else ()
    res = {name: np.full((*shape, *tail, d, d), np.nan) for name in _MATRICES}
    if s.transient:
        res["cov_moment"] = np.full((*shape, *tail, d, d), np.nan)
    for name in _SCALARS:
        res[name] = np.full((*shape, *tail, *((n_pairs,) if n_pairs and name in _LOGNEG else ())), np.nan)
    if not s.transient:
        res["zscore_max_continuous"] = np.full(shape, np.nan)
    res["max_dt_em"] = np.full(shape, np.nan)
    if keep_traces:
        n_trace_t = s.n_steps // s.trace_every + 1
        for name in RECORDED:
            res[name] = np.full((*shape, s.traces, n_trace_t, d), np.nan)
    return res


PointKey = tuple[int, int]  # (flat sweep point, branch)


def _dims_of(name: str, point_dims: tuple[str, ...], transient: bool, pairs: bool = False) -> tuple[str, ...]:
    """The dimensions of data variable ``name`` (point_dims: the sweep's dimensions and ``branch``; ``pairs``:
    E_N over ``pair``)."""
    if name in RECORDED:
        return (*point_dims, "trajectory", "time", "quadrature")
    t = ("time",) if transient and name not in _PER_POINT else ()
    if pairs and name in _LOGNEG:
        return (*point_dims, *t, "pair")
    matrix = name.startswith(("cov", "zscore")) and not name.startswith("zscore_max")
    return (*point_dims, *t, "row", "col") if matrix else (*point_dims, *t)


def assemble_simulation(settings: SimulationSettings, params: dict, ds: xr.Dataset,
                        estimates: Mapping[PointKey, dict], system: LinearSystem | str = DEFAULT_SYSTEM,
                        traces: Mapping[PointKey, tuple[np.ndarray, np.ndarray]] | None = None) -> xr.Dataset:
    """The Dataset of a run from the estimates of each (point, branch) it simulated.

    ``estimates[(point, branch)]``: ``ensemble.point_estimates`` of the point's complete statistics (the
    points absent are NaN: unstable branches). ``traces[(point, branch)]``: (trace, noise) of its recorded
    trajectories, (traces, n_trace_t, d) each; None: the Dataset holds no traces (given, even empty, it holds
    them, NaN where absent: e.g. streamed to the file by the caller).
    """
    s = settings
    system = as_system(system)
    values, dims, shape = system_grid(system, params)
    keep_traces = bool(s.traces and traces is not None)
    pairs = reported_pairs(system)
    res = _empty_results(s, (*shape, ds.sizes["branch"]), keep_traces, system.dimension, len(pairs) or None)
    for (point, b), out in estimates.items():
        at = (*np.unravel_index(point, shape), b)
        for name in res:
            if name in out:
                res[name][at] = out[name]
    for (point, b), recorded in (traces or {}).items() if keep_traces else ():
        at = (*np.unravel_index(point, shape), b)
        for name, arr in zip(RECORDED, recorded, strict=True):
            res[name][at][:arr.shape[0]] = arr
    for name, arr in res.items():
        ds[name] = (_dims_of(name, (*dims, "branch"), s.transient, bool(pairs)), arr)
    if pairs:
        ds = ds.assign_coords(pair=pairs)
    return _finish(ds, s, reference_rates(system, params), system)





def _finish(ds: xr.Dataset, s: SimulationSettings, omega_refs: np.ndarray, system: LinearSystem) -> xr.Dataset:
    """Time and trace coordinates, the unit of times (ω_ref), provenance, the catalogue's attributes."""
    omega_ref = float(omega_refs[0])
    if s.transient or s.traces:
        ds = ds.assign_coords(time_coordinate(s, omega_ref))
    if len(omega_refs) == 1:  # the unit of dt, burn_in, duration (swept: e.g. the omega_m coordinate)
        set_time_reference(ds, omega_ref)
    if s.traces:
        ds = ds.assign_coords(trace_coordinates(s, system))
    ds.attrs["simulation"] = json.dumps(settings_to_dict(s))
    return apply_catalogue(ds, title="sde_com time-domain simulation", system=system)


def time_coordinate(s: SimulationSettings, omega_m: float) -> dict[str, xr.DataArray]:
    """Snapshot / trace times: ``time`` in seconds (steps × dt / ω_ref; ``omega_m``: ω_ref) and
    ``time_scaled`` (steps × dt)."""
    steps = s.snapshot_steps if s.transient else np.arange(0, s.n_steps + 1, s.trace_every)
    return time_coordinates(steps * s.dt, omega_m)


def trace_coordinates(s: SimulationSettings, system: LinearSystem) -> dict[str, xr.DataArray]:
    """The ``trajectory`` and ``quadrature`` coordinates of recorded traces (attrs: sde_com.results.catalogue),
    labelled with the system's quadratures."""
    return dict(trajectory=xr.DataArray(np.arange(s.traces, dtype=np.int32), dims="trajectory"),
                quadrature=xr.DataArray(list(system.quadratures), dims="quadrature"))
