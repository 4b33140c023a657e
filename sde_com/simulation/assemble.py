"""A sweep's time-domain results as one Dataset: the steady-state sweep (the skeleton), then the estimates of
every (point, branch) from its units, in unit order, with coordinates and attributes from the catalogue
(``sde_com.results.catalogue``). Times in the file: seconds (``time``) and ω_m·t (``time_scaled``).
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from sde_com.errors import UserError
from sde_com.physics.resonator.drift import QUADRATURES
from sde_com.results.catalogue import apply_catalogue, set_time_reference, time_coordinates, variables_of
from sde_com.results.sweep import parameter_grid, sweep
from sde_com.simulation.ensemble import SimulationUnit, estimate_point, point_model
from sde_com.simulation.settings import SimulationSettings, settings_to_dict

# the time-domain data variables (their units and meaning: sde_com.catalogue)
SIM_VARIABLE_INFO: tuple[str, ...] = variables_of("simulate")

_MATRICES = ("cov_sim", "cov_sim_err", "cov_ref", "zscore")  # (…, row, col) at every point (and time)
_SCALARS = ("zscore_max", "logneg_sim", "logneg_sim_err", "logneg_ref")  # one value at every point (and time)
_PER_POINT = ("max_dt_em", "zscore_max_continuous")  # never along time
_TRACES = ("trace", "noise")


def prepare_simulation(settings: SimulationSettings, params: dict) -> xr.Dataset:
    """Validate a sweep-wide run and return its steady-state sweep (the skeleton the results fill)."""
    _, dims, _, _ = parameter_grid(params)
    if (settings.transient or settings.traces) and "omega_m" in dims:
        raise UserError("omega_m cannot be swept in a run with snapshots or traces: their time axis is in seconds")
    return sweep(store_cov=True, revival=False, **params)


def _empty_results(s: SimulationSettings, shape: tuple[int, ...], keep_traces: bool) -> dict[str, np.ndarray]:
    """NaN-filled arrays (sweep dims…, branch, [time], …) of every variable the run produces."""
    tail = (s.snapshot_steps.size,) if s.transient else ()
    res = {name: np.full((*shape, *tail, 6, 6), np.nan) for name in _MATRICES}
    if s.transient:
        res["cov_moment"] = np.full((*shape, *tail, 6, 6), np.nan)
    for name in _SCALARS:
        res[name] = np.full((*shape, *tail), np.nan)
    if not s.transient:
        res["zscore_max_continuous"] = np.full(shape, np.nan)
    res["max_dt_em"] = np.full(shape, np.nan)
    if keep_traces:
        n_trace_t = s.n_steps // s.trace_every + 1
        for name in _TRACES:
            res[name] = np.full((*shape, s.traces, n_trace_t, 6), np.nan)
    return res


def _units_by_point(results) -> dict[tuple[int, int], list[SimulationUnit]]:
    """The units of each (point, branch), in unit order."""
    by_point: dict[tuple[int, int], list[SimulationUnit]] = {}
    for unit in sorted(results.keys()):
        by_point.setdefault((unit.point, unit.branch), []).append(unit)
    return by_point


def _fill_traces(res: dict, at: tuple, units: list[SimulationUnit], results) -> None:
    for u in units:
        if "trace" in results[u]:
            n = results[u]["trace"].shape[0]
            for name in _TRACES:
                res[name][at][u.first:u.first + n] = results[u][name]


def _dims_of(name: str, point_dims: tuple[str, ...], transient: bool) -> tuple[str, ...]:
    """The dimensions of data variable ``name`` (point_dims: the sweep's dimensions and ``branch``)."""
    if name in _TRACES:
        return (*point_dims, "trajectory", "time", "quadrature")
    t = ("time",) if transient and name not in _PER_POINT else ()
    matrix = name.startswith(("cov", "zscore")) and not name.startswith("zscore_max")
    return (*point_dims, *t, "row", "col") if matrix else (*point_dims, *t)


def assemble_simulation(settings: SimulationSettings, params: dict, ds: xr.Dataset, results,
                        traces_in_results: bool = True) -> xr.Dataset:
    """Merge unit results into the Dataset, in unit order whatever order they finished in.

    ``results`` maps each SimulationUnit to its ``run_block`` output; it may load them lazily (one point's
    blocks are read one after the other). ``traces_in_results``: the blocks carry their recorded traces.
    """
    s = settings
    values, dims, shape, _ = parameter_grid(params)
    keep_traces = bool(s.traces and traces_in_results)
    res = _empty_results(s, (*shape, ds.sizes["branch"]), keep_traces)
    for (point, b), units in _units_by_point(results).items():
        at = (*np.unravel_index(point, shape), b)
        out = estimate_point(point_model(s, params, point, b), s, (results[u] for u in units))
        for name in res:
            if name in out:
                res[name][at] = out[name]
        if keep_traces:
            _fill_traces(res, at, units, results)
    for name, arr in res.items():
        ds[name] = (_dims_of(name, (*dims, "branch"), s.transient), arr)
    return _finish(ds, s, values)


def _finish(ds: xr.Dataset, s: SimulationSettings, values: dict) -> xr.Dataset:
    """Time and trace coordinates, the unit of times, provenance, the catalogue's attributes."""
    omega_m = float(values["omega_m"][0])
    if s.transient or s.traces:
        ds = ds.assign_coords(time_coordinate(s, omega_m))
    if len(values["omega_m"]) == 1:  # the unit of dt, burn_in, duration (swept: the omega_m coordinate)
        set_time_reference(ds, omega_m)
    if s.traces:
        ds = ds.assign_coords(trace_coordinates(s))
    ds.attrs["simulation"] = json.dumps(settings_to_dict(s))
    return apply_catalogue(ds, title="sde_com time-domain simulation")


def time_coordinate(s: SimulationSettings, omega_m: float) -> dict[str, xr.DataArray]:
    """Snapshot / trace times: ``time`` in seconds (steps × dt / ω_m) and ``time_scaled`` (steps × dt)."""
    steps = s.snapshot_steps if s.transient else np.arange(0, s.n_steps + 1, s.trace_every)
    return time_coordinates(steps * s.dt, omega_m)


def trace_coordinates(s: SimulationSettings) -> dict[str, xr.DataArray]:
    """The ``trajectory`` and ``quadrature`` coordinates of recorded traces (attrs: sde_com.catalogue)."""
    return dict(trajectory=xr.DataArray(np.arange(s.traces, dtype=np.int32), dims="trajectory"),
                quadrature=xr.DataArray(list(QUADRATURES), dims="quadrature"))
