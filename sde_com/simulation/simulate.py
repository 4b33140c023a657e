"""Time-domain simulation of the linearized Langevin equations du = A u dt + dW, E[dW dWᵀ] = D dt.

The face of the simulation layer: ``simulate`` (a steady-state sweep plus an ensemble at every point and stable
branch) and ``simulate_time_steps`` (a time-step study), with the names callers import from here. The work is
done by ``settings`` (SimulationSettings), ``schemes`` (Euler–Maruyama, exact discretization), ``ensemble``
(points, units of work), ``estimators`` (errors, z-scores, jackknife) and ``assemble`` (the Dataset); see
docs/physics.md, "The stochastic picture". Times are in units of 1/ω_m unless a name says seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import xarray as xr

from sde_com.kernel_cache import ENSEMBLE_MODULES, announce_compile
from sde_com.physics.system import LinearSystem
from sde_com.results.catalogue import apply_catalogue
from sde_com.results.sweep import DEFAULT_SYSTEM, Grid, as_system
from sde_com.simulation.assemble import (
    SIM_VARIABLE_INFO,
    assemble_simulation,
    prepare_simulation,
    time_coordinate,
    trace_coordinates,
)
from sde_com.simulation.ensemble import (
    MIN_TRAJECTORIES_PER_UNIT,
    STEPS_PER_UNIT,
    PointModel,
    SimulationUnit,
    entanglement_of,
    estimate_point,
    initial_covariance,
    plan_units,
    point_accumulator,
    point_estimates,
    point_model,
    point_parameters,
    prepare_operating_point,
    prepare_point,
    run_block,
    run_unit,
    simulate_point,
    statistics_layout,
    step_maps,
    system_grid,
    trajectory_blocks,
    warm_up_kernels,
)
from sde_com.simulation.estimators import N_BATCHES, N_JACKKNIFE_GROUPS, MomentAccumulator, stat_block_size
from sde_com.simulation.settings import (
    INITIAL_STATES,
    METHODS,
    SIMULATION_KEYS,
    SimulationSettings,
    settings_to_dict,
)

__all__ = [  # re-exported: sde_com/__init__.py, runs/ and the tests import them from here
    "INITIAL_STATES", "METHODS", "MIN_TRAJECTORIES_PER_UNIT", "N_BATCHES", "N_JACKKNIFE_GROUPS",
    "SIMULATION_KEYS", "SIM_VARIABLE_INFO", "STEPS_PER_UNIT", "MomentAccumulator", "PointModel",
    "SimulationSettings", "SimulationUnit", "assemble_simulation", "entanglement_of", "estimate_point",
    "initial_covariance", "plan_units", "point_accumulator", "point_estimates", "point_model",
    "point_parameters", "prepare_operating_point", "prepare_point", "prepare_simulation", "run_block",
    "run_ensembles", "run_unit", "settings_to_dict", "simulate", "simulate_point", "simulate_time_steps",
    "stat_block_size", "statistics_layout", "step_maps", "system_grid", "time_coordinate", "time_step_study",
    "trace_coordinates", "trajectory_blocks", "warm_up_kernels",
]


def simulate(settings: SimulationSettings, *, trace_sink: Callable | None = None,
             system: LinearSystem | str = DEFAULT_SYSTEM, **params) -> xr.Dataset:
    """Steady-state sweep (``sde_com.sweep``) plus a time-domain ensemble at every point and stable branch.

    ``system``: the ``LinearSystem`` simulated, or a registered name (default: the spinning resonator);
    ``params`` are its parameters, each a scalar or a 1-D sequence (a dimension), as in ``sweep``. The same
    seed is used at every point (common random numbers: differences between points are not blurred by
    independent noise). Unstable branches get NaN
    unless the run is a transient with ``allow_unstable``. Recorded traces are returned in the Dataset, or,
    with ``trace_sink(point_index, branch, first_trajectory, traces, noises)``, handed over block by block
    (``scenario.run_scenario_to_file`` streams them to disk this way). A modulated system (capability
    'periodic') runs its transient at one point instead: ``simulation.periodic.modulated_dataset``.
    """
    modulated = as_system(system)
    if "periodic" in modulated.capabilities:
        from sde_com.simulation.periodic import modulated_dataset

        return modulated_dataset(modulated, params, settings)
    return run_ensembles(settings, Grid(params, system), trace_sink)


def run_ensembles(settings: SimulationSettings, params: Grid, trace_sink: Callable | None = None) -> xr.Dataset:
    """``simulate`` over a ``Grid`` built before (its system and parameters; the plan's, handed down)."""
    system = params.system
    announce_compile((*system.kernel_modules, *ENSEMBLE_MODULES))
    ds = prepare_simulation(settings, params, system)
    estimates, traces = {}, {}
    model = acc = None
    recorded: list = []
    for unit in plan_units(settings, ds):  # points and branches in turn, each one's units in trajectory order
        key = (unit.point, unit.branch)
        if unit.first == 0:  # a new (point, branch): prepared once; only its statistics are kept
            model = point_model(settings, params, *key, system)
            acc, recorded = point_accumulator(model, settings), []
        block = run_unit(settings, params, unit, model)
        if "trace" in block:
            pair = block.pop("trace"), block.pop("noise")
            if trace_sink is not None:
                trace_sink(unit.point, unit.branch, unit.first, *pair)
            else:
                recorded.append(pair)
        acc.add(block)
        if acc.complete:
            estimates[key] = point_estimates(model, settings, acc)
            if recorded:
                traces[key] = tuple(np.concatenate(x) for x in zip(*recorded, strict=True))
    return assemble_simulation(settings, params, ds, estimates, system=system, traces=traces)


def simulate_time_steps(settings: SimulationSettings, dts, *, system: LinearSystem | str = DEFAULT_SYSTEM,
                        **params) -> xr.Dataset:
    """A time-step study: ``simulate`` once per dt (units of 1/ω_ref), time-domain results along a ``dt``
    dimension beside the (dt-independent) steady-state variables. Same seed for every dt."""
    return time_step_study(settings, dts, Grid(params, system))


def time_step_study(settings: SimulationSettings, dts, grid: Grid) -> xr.Dataset:
    """``simulate_time_steps`` over a ``Grid`` built before (one grid for every dt)."""
    system = grid.system
    runs = [run_ensembles(replace(settings, dt=float(dt)), grid) for dt in dts]
    sim_names = [n for n in runs[0].data_vars if n in SIM_VARIABLE_INFO]
    ds = runs[0].drop_vars(sim_names)
    dt = xr.DataArray(np.asarray(dts, dtype=float), dims="dt")
    for name in sim_names:
        ds[name] = xr.concat([r[name] for r in runs], dim=dt)
    ds = ds.assign_coords(dt=dt)
    sim = settings_to_dict(settings)
    sim["dt"] = [float(x) for x in dts]
    ds.attrs["simulation"] = json.dumps(sim)
    return apply_catalogue(ds, title="sde_com time-step study", system=system)
