"""The kinds of run a scenario can ask for, one class each, in one registry (``RUN_KINDS``).

A kind says which scenario table selects it and what it needs of the others (``parse_table``), which
capability of the system it needs, how its run splits into units of work (``plan``, ``models``), how a unit
runs (``run_unit``), how the units' results merge into the written Dataset (``write``), how the whole run goes
in memory (``run``) and which output variables it can write (the catalogue's ``variables_of``). ``kind_of``
decides a scenario's kind, once, for ``runs.scenario`` and ``runs.engine``, which dispatch through the
registry: adding a kind is one class and ``register_run_kind`` (from outside the package too).

Units carry everything a worker needs: blocks of sweep points (``SweepUnit``), blocks of trajectories at one
operating point (``simulate.SimulationUnit``), or the whole run (``WholeRun``: a time-step study, a
single-point run), whose result is the finished Dataset.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from sde_com.errors import NumericalError, RunWarning, UserError
from sde_com.kernel_cache import ENSEMBLE_MODULES, VARYING_MODULES, periodic_modules
from sde_com.physics.feedback import check_feedback, loop_attrs
from sde_com.physics.gaussian import fluctuation_numbers
from sde_com.physics.linear import max_growth_rate
from sde_com.physics.measurement import check_ports
from sde_com.physics.model import points
from sde_com.physics.system import LinearSystem, require
from sde_com.results.catalogue import default_variables, variables_of
from sde_com.results.conditional import conditional_steady_sweep
from sde_com.results.sweep import fast_chain, parameter_grid, steady_sweep, sweep_block
from sde_com.runs.estimate import (
    SECONDS_PER_POINT_CONDITIONAL,
    Estimate,
    conditional_cost,
    ensemble_cost,
    steady_cost,
)
from sde_com.runs.mergers import (
    ConditionalMerger,
    Merger,
    SimulationMerger,
    SweepMerger,
    finish_dataset,
    linearization_checks,
    warn_of,
)
from sde_com.runs.plotspec import MAX_PANELS, RunOutline, estimate_figure, unwritable
from sde_com.runs.schema import ScenarioError, check_kind_keys, check_table, defaults
from sde_com.simulation.ensemble import grid_points, reported_pairs
from sde_com.simulation.keys import MAX_PHASE_STEP
from sde_com.simulation.schemes import get_scheme, scheme_names
from sde_com.simulation.simulate import (
    plan_units,
    point_model,
    prepare_simulation,
    run_ensembles,
    run_unit,
    settings_to_dict,
    time_step_study,
    warm_up_kernels,
)

if TYPE_CHECKING:
    from sde_com.runs.scenario import Scenario

SWEEP_POINTS_PER_UNIT = 50_000  # ≈ 0.1–0.2 s of chain work per unit


@dataclass(frozen=True, order=True)
class SweepUnit:
    """Flat sweep points [start, stop)."""

    start: int
    stop: int


@dataclass(frozen=True, order=True)
class WholeRun:
    """The whole run in one unit; its result is the finished Dataset (``{"dataset": ds}``), never merged."""


class RunKind:
    """A job a scenario asks for, for any system that has what it needs (``capability``); the defaults are a
    run done whole, in one unit. It owns what it writes: ``variables`` (for a given system), ``outline`` (their
    dimensions, for figures and estimates before the run) and ``unwritable`` (what this run cannot write)."""

    name = ""
    table: str | None = None  # the scenario table that selects it
    capability: str | None = None  # what it needs of the system (``physics.system.require``)
    heading = ""  # what it is, for the output reference (``output_reference_markdown``)
    asks = ""  # what a scenario gives to run it, for messages ("a [simulate] table"; default: its table)
    output_sets: tuple[str, ...] = ()  # the catalogue's sets of variables it writes (``catalogue.OUTPUT_SETS``)

    def asked_by(self) -> str:
        """What a scenario gives to run this kind (for a message naming a variable it writes)."""
        return self.asks or f"a [{self.table}] table"

    def kernel_modules(self, scenario: Scenario) -> tuple[str, ...]:
        """The sde_com modules whose Numba kernels this run compiles on an empty cache (the CLI says so before
        it starts): its system's, and the ensemble kernels wherever it simulates."""
        own = ENSEMBLE_MODULES if scenario.simulation is not None else ()
        return (*scenario.system.kernel_modules, *own)

    def selected(self, scenario) -> bool:
        """Whether ``scenario`` (anything with the Scenario's ``tables``, ``simulation`` and ``dt_study``) is of
        this kind: by default, whether it has the kind's table."""
        return self.table is not None and scenario.tables.get(self.table) is not None

    def variables(self, system: LinearSystem) -> tuple[str, ...]:
        """The output variables a run of this kind can write for ``system`` ([output] variables are chosen
        among them)."""
        raise NotImplementedError

    def outline(self, scenario: Scenario) -> RunOutline:
        """What the run writes beside the swept parameters (its sizes, what it leaves out): for ``check_plot``,
        the default [output] selection and the plan's estimate."""
        raise NotImplementedError

    def cost(self, scenario: Scenario, units) -> Estimate:
        """What running the planned ``units`` costs (time, memory, output, scratch): the plan line and the
        refusals before any work (``runs.estimate``). By default an ensemble's where the run simulates
        (``estimate.ensemble_cost``), else a steady state's over the grid (``estimate.steady_cost``)."""
        return ensemble_cost(scenario, units) if scenario.simulation is not None else steady_cost(scenario, units)

    def default_figure(self, sizes, variables) -> dict | None:
        """The figure ``sde-com plot`` draws of this kind's output when [plot] gives no kind (``sizes``,
        ``variables``: the output's dimensions and variables); None where the output is not this kind's, or
        where the plot's choice from the dimensions (lines or a map over the swept parameters) is the figure."""
        return None

    def unwritable(self, scenario: Scenario) -> dict[str, str]:
        """variable → why this run cannot write it, among ``variables`` (``plotspec.unwritable`` of its
        outline, and the system's undeclared mean-field values): an [output] list naming one is refused."""
        swept = {k: len(v) for k, v in scenario.parameters.items() if isinstance(v, list)}
        return {**undeclared(scenario.system, self.variables(scenario.system)),
                **unwritable(scenario.run_outline, swept)}

    def parse_table(self, table, simulation, dt_study, params, base: Path | None = None) -> dict | None:
        """The kind's own table, checked against the others (by default the schema's checks of its keys)."""
        return None if table is None or self.table is None else dict(check_table(self.table, table))

    takes_modulation = False  # runs a system whose matrices are modulated in time (A(t): [periodic])
    companions: tuple[str, ...] = ()  # tables that only mean something beside this kind's ([feedback] on [[measure]])

    def parse_companion(self, name: str, table, simulation, params, own) -> dict:
        """A companion table ``name`` (one of ``companions``), checked against the kind's own table ``own``."""
        return dict(check_table(name, table))

    def check_tables(self, tables: Mapping[str, dict], params) -> None:
        """The kind's table and its companions together, once all are parsed (nothing to check by default)."""

    def run(self, scenario: Scenario, trace_sink=None) -> xr.Dataset:
        """The whole run in memory, before ``finish_dataset``."""
        raise NotImplementedError

    def plan(self, scenario: Scenario) -> list:
        """Every unit of the run, in merge order; bad settings fail here, before any work."""
        return [WholeRun()]

    def models(self, scenario: Scenario, units: list) -> list:
        """What each unit needs prepared on the client (aligned with ``units``; None: nothing)."""
        return [None] * len(units)

    def run_unit(self, scenario: Scenario, unit, model=None) -> dict:
        """Compute one unit (what a worker runs)."""
        return {"dataset": finish_dataset(scenario, self.run(scenario))}

    def merger(self, scenario: Scenario, units: list, models: list, folder: Path, state: dict | None) -> Merger:
        """What takes the units' results as they finish and writes the output (``runs.mergers``); ``models``:
        what the units were prepared with, ``folder``: the checkpoint folder for its streamed data, ``state``:
        its saved state when the run resumes."""
        merger = Merger(len(units))
        if state is not None:
            merger.done = state["done"].astype(bool)
        return merger

    def warm_up(self, scenario: Scenario, units: list, models: list):
        """A callable running this job's kernels on a tiny input (``runs.engine.connect``), or None."""
        return None

    def describe(self, scenario: Scenario, unit) -> str:
        """The unit, for a report of its failure: with the parameters it ran at."""
        return f"the whole {self.name} run at {json.dumps(scenario.parameters)}"


class SweepPlan(Sequence):
    """The units of a sweep, blocks of SWEEP_POINTS_PER_UNIT flat points, computed on demand."""

    def __init__(self, n_points: int):
        self.n_points = n_points

    def __len__(self) -> int:
        return -(-self.n_points // SWEEP_POINTS_PER_UNIT)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        a = range(len(self))[i] * SWEEP_POINTS_PER_UNIT
        return SweepUnit(a, min(a + SWEEP_POINTS_PER_UNIT, self.n_points))


def simulation_sizes(sim, dt_study=None) -> dict[str, int]:
    """The dimensions [simulate] adds: ``time`` (snapshots, else trace records), ``trajectory`` (recorded
    traces), ``dt`` (a time-step study)."""
    sizes = {}
    if sim.transient:
        sizes["time"] = int(sim.snapshot_steps.size)
    elif sim.traces:
        sizes["time"] = sim.n_steps // sim.trace_every + 1
    if sim.traces:
        sizes["trajectory"] = int(sim.traces)
    if dt_study:
        sizes["dt"] = len(dt_study)
    return sizes


def steady_set(system: LinearSystem) -> str:
    """The catalogue's set of a system's steady-state variables: its chain's ('sweep', the resonator's) or the
    per-point path's ('seam_sweep': E_N over ``pair``, the mean-field values the system declares)."""
    return "sweep" if fast_chain(system) is not None else "seam_sweep"


def own_variables(system: LinearSystem) -> tuple[str, ...]:
    """The mean-field variables a system declares beyond its steady state's set (a plug-in's own, registered
    in the catalogue: ``catalogue.register_variable``)."""
    listed = variables_of(steady_set(system))
    return tuple(v for v in system.mean_field_variables if v not in listed)


def steady_outline(system: LinearSystem, kind: str = "sweep", sizes: Mapping[str, int] | None = None,
                   transient: bool = False) -> RunOutline:
    """The outline of a run of ``system`` whose steady state is its chain's sweep (``sweep.fast_chain``: the
    catalogue's "sweep" set) or the per-point path's ("seam_sweep": E_N over ``pair``); ``kind``: the
    catalogue's set of the run's own variables ('sweep' for a steady-state run)."""
    d = system.dimension
    steady = steady_set(system)
    own = steady if kind == "sweep" else kind
    pairs = reported_pairs(system)
    extra = {"pair": len(pairs)} if pairs and (kind in ("simulate", "drive") or steady == "seam_sweep") else {}
    absent = undeclared(system, variables_of(own) + (variables_of(steady) if kind == "simulate" else ()))
    return RunOutline(own, {**(sizes or {}), "row": d, "col": d, "quadrature": d, **extra}, transient,
                      absent=tuple(absent),
                      steady=steady, quadratures=tuple(system.quadratures),
                      extra=own_variables(system) if kind == "sweep" or steady == "sweep" else ())


class SweepKind(RunKind):
    """The steady state over the [model] grid, [model] only: a system's vectorized chain in blocks of sweep
    points (the resonator's), any other system whole, point by point."""

    name = "sweep"
    heading = "Steady-state sweep (`[model]` only)"
    asks = "no [simulate] table (the steady state's; with [simulate]: its time-domain estimates)"
    output_sets = ("sweep", "seam_sweep")

    def selected(self, scenario) -> bool:
        return scenario.simulation is None

    def variables(self, system):
        return variables_of(steady_set(system)) + own_variables(system)

    def outline(self, scenario):
        return steady_outline(scenario.system)

    def run(self, scenario, trace_sink=None):
        return steady_sweep(scenario.parameters, store_cov=_store_cov(scenario), revival=_revival(scenario))

    def cost(self, scenario, units):
        return steady_cost(scenario, units)

    def variables_written(self, scenario) -> tuple[str, ...]:
        """The variables the scenario's file gets: its [output] list, else the kind's defaults
        (``catalogue.default_variables``)."""
        if scenario.variables is not None:
            return scenario.variables
        return default_variables(steady_set(scenario.system), swept=bool(scenario.dimensions))

    def plan(self, scenario):
        if fast_chain(scenario.system) is None:  # point by point: done whole
            return [WholeRun()]
        _check_corners(scenario.system, scenario.parameters)
        return SweepPlan(math.prod(parameter_grid(scenario.parameters, scenario.system)[2]))

    # a chain's sweep runs in units of points, streamed to the file; any other whole (RunKind's)
    def run_unit(self, scenario, unit, model=None):
        if isinstance(unit, WholeRun):
            return super().run_unit(scenario, unit, model)
        return sweep_block(scenario.parameters, unit.start, unit.stop, _store_cov(scenario), system=scenario.system)

    def merger(self, scenario, units, models, folder, state):
        if units and isinstance(units[0], WholeRun):
            return super().merger(scenario, units, models, folder, state)
        return SweepMerger(scenario, units, folder, state)

    def warm_up(self, scenario, units, models):
        if fast_chain(scenario.system) is None:
            return None
        return functools.partial(sweep_block, scenario.parameters, 0, 1, _store_cov(scenario), system=scenario.system)

    def describe(self, scenario, unit):
        if isinstance(unit, WholeRun):
            return super().describe(scenario, unit)
        return f"sweep points {unit.start}..{unit.stop - 1}"


@dataclass(frozen=True)
class ConditionalUnit:
    """A block of conditional trajectories first .. first + n − 1 at flat grid point ``point``."""

    first: int
    n: int
    point: int = 0


class ConditionalPlan(Sequence):
    """The units of a conditional run, blocks of ``size`` trajectories at each of ``points`` grid points (point
    by point), made on demand (the cost estimate reads only the length, so a run too large is refused before
    any unit exists)."""

    def __init__(self, trajectories: int, size: int, points: int = 1):
        self.trajectories, self.size, self.points = trajectories, size, points
        self.blocks = -(-trajectories // size)

    def __len__(self) -> int:
        return self.points * self.blocks

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        point, block = divmod(range(len(self))[i], self.blocks)
        first = block * self.size
        return ConditionalUnit(first, min(self.size, self.trajectories - first), point)


class ConditionalKind(RunKind):
    """Continuous measurement ([[measure]]) of any system with output ports. Without [simulate]: the conditional
    steady state over the [model] grid, point by point, beside the steady state (``results.conditional``). With
    [simulate] (the exact scheme, over the grid): conditional trajectories, the true state, the record and
    the Kalman filter's estimate (``simulation.conditional``), done whole."""

    name = "conditional"
    table = "measure"
    capability = "output_ports"
    heading = "Continuous measurement (`[[measure]]`: the conditional steady state; with `[simulate]`, trajectories)"
    asks = "[[measure]] tables (detectors on output ports)"
    output_sets = ("seam_sweep", "conditional", "feedback", "conditional_trajectories", "filter")
    companions = ("feedback",)

    def selected(self, scenario) -> bool:
        return scenario.tables.get("measure") is not None

    def variables(self, system):
        return (variables_of("seam_sweep") + variables_of("conditional") + variables_of("feedback")
                + variables_of("conditional_trajectories"))

    def unwritable(self, scenario):
        why = super().unwritable(scenario)
        sim = scenario.simulation
        if scenario.tables.get("feedback") is None:
            why.update(dict.fromkeys((*variables_of("feedback"), *LOOP_TRAJECTORY_VARIABLES),
                                     "the closed loop's: give a [feedback] table"))
        if sim is not None and not sim.traces:
            why["feedback_force"] = "recorded only with [simulate] traces >= 1"
        return why

    def parse_companion(self, name, table, simulation, params, own):
        """[feedback]: the schema's keys, forces on the system's quadratures, targets among its modes, a gain of
        the right shape (``feedback.check_feedback``)."""
        table = dict(check_table(name, table))
        try:
            return check_feedback(table, params.system.modes, params.system.quadratures)
        except UserError as exc:
            raise ScenarioError(str(exc)) from None

    def outline(self, scenario):
        system = scenario.system
        channels_ = sum(2 if m.get("scheme") == "heterodyne" else 1 for m in scenario.tables["measure"])
        sim = scenario.simulation
        loop = scenario.tables.get("feedback")
        forces = {"force": len(loop["force"])} if loop is not None else {}
        if sim is not None:
            sizes = {"time": 2, "row": system.dimension, "col": system.dimension, "quadrature": system.dimension,
                     "channel": channels_, **({"trajectory": sim.traces, "interval": 2} if sim.traces else {}),
                     **forces}
            absent = {*(() if sim.traces else ("trace", "estimate", "record", "feedback_force")),
                      *(() if loop else LOOP_TRAJECTORY_VARIABLES)}
            return RunOutline("conditional_trajectories", sizes, True, absent=tuple(sorted(absent)),
                              steady="seam_sweep", quadratures=tuple(system.quadratures))
        base = steady_outline(system, "seam_sweep")
        pairs = len(system.modes) * (len(system.modes) - 1) // 2
        return replace(base, kind="conditional", steady="seam_sweep", with_steady=True,
                       sizes={**base.sizes, "pair": pairs, "mode": len(system.modes), "channel": channels_,
                              **forces}, absent=tuple(undeclared(system, variables_of("seam_sweep"))),
                       extra=variables_of("feedback") if loop else ())

    def default_figure(self, sizes, variables):
        """A trajectory with its estimate and ±σ band; or E_N and purity, unconditional against conditional."""
        if "estimate" in variables:
            return {"kind": "traces"}
        if "purity_conditional" not in variables and "logneg_conditional" not in variables:
            return None  # not this kind's output
        shown = [v for v in ("logneg", "logneg_conditional", "purity", "purity_conditional") if v in variables]
        return {"kind": "lines", "y": shown}

    def parse_table(self, table, simulation, dt_study, params, base=None):
        """The detectors: the schema's keys, each on a mode with an output port, those of one port within its
        light; with [simulate], the exact scheme (the record's discretization)."""
        if table is None:
            return None
        measures = [{**defaults("measure"), **m} for m in check_table("measure", table)]
        system = params.system
        if simulation is not None:
            _check_conditional_simulation(simulation, dt_study, params)
        try:
            first = {k: v[0] if isinstance(v, list) else v for k, v in params.items()}  # the ports of every point
            check_ports(measures, system.modes, system.output_ports(system.resolve(first)))
        except UserError as exc:
            raise ScenarioError(str(exc)) from None
        return tuple(measures)

    def cost(self, scenario, units):
        if scenario.simulation is not None:
            sim = scenario.simulation
            n_steps = round(sim.duration / sim.dt)
            stride = 1 if sim.save_every is None else max(1, round(sim.save_every / sim.dt))
            return conditional_cost(scenario, units, n_steps // stride + 2, n_steps)
        return steady_cost(scenario, units, SECONDS_PER_POINT_CONDITIONAL)

    def kernel_modules(self, scenario):
        own = ("kernels.filtering",) if scenario.simulation is not None else ()
        return (*scenario.system.kernel_modules, *own)

    def run(self, scenario, trace_sink=None):
        measures = list(scenario.tables["measure"])
        sim = scenario.simulation
        if sim is None:
            loop = scenario.tables.get("feedback")
            ds = conditional_steady_sweep(scenario.parameters, measures, feedback=loop)
            return ds.assign_attrs(measure=json.dumps(measures),
                                   **({"feedback": json.dumps(loop_attrs(loop))} if loop else {}))
        units = self.plan(scenario)  # in memory: the units one after another, merged as a run merges them
        models = self.models(scenario, units)
        merger = ConditionalMerger(scenario, units, models, None)
        for i, unit in enumerate(units):
            merger.add(i, self.run_unit(scenario, unit, models[i]))
        return merger.dataset_of(scenario)

    # with [simulate]: blocks of trajectories, units of work (Dask, resume), added in order by ConditionalMerger
    def plan(self, scenario):
        sim = scenario.simulation
        if sim is None:
            return [WholeRun()]
        from sde_com.simulation.conditional import UNIT_TRAJECTORIES

        points = grid_points(scenario.system, scenario.parameters)
        for p in points:  # bad settings and points fail here, before any work
            self._model(scenario, p)
        return ConditionalPlan(sim.trajectories, UNIT_TRAJECTORIES, len(points))

    def _model(self, scenario, params: dict) -> dict:
        from sde_com.simulation.conditional import prepare_conditional

        sim = scenario.simulation
        return prepare_conditional(list(scenario.tables["measure"]), scenario.system, params, dt=sim.dt,
                                   duration=sim.duration, initial=sim.initial, save_every=sim.save_every,
                                   method=sim.method, feedback=scenario.tables.get("feedback"))

    def models(self, scenario, units):
        if scenario.simulation is None:
            return [None] * len(units)
        points = grid_points(scenario.system, scenario.parameters)
        made: dict[int, dict] = {}
        for unit in units:
            if unit.point not in made:
                made[unit.point] = self._model(scenario, points[unit.point])
        return [made[unit.point] for unit in units]

    def run_unit(self, scenario, unit, model=None):
        if not isinstance(unit, ConditionalUnit):
            return super().run_unit(scenario, unit, model)
        from sde_com.simulation.conditional import run_conditional_unit

        return run_conditional_unit(model, scenario.simulation.seed, unit.first, unit.n, scenario.simulation.traces)

    def merger(self, scenario, units, models, folder, state):
        if units and isinstance(units[0], ConditionalUnit):
            return ConditionalMerger(scenario, units, models, state)
        return super().merger(scenario, units, models, folder, state)

    def describe(self, scenario, unit):
        if isinstance(unit, ConditionalUnit):
            return f"conditional trajectories {unit.first}..{unit.first + unit.n - 1} at grid point {unit.point}"
        return super().describe(scenario, unit)


class PeriodicKind(RunKind):
    """The periodic steady state ([periodic]) of a system with a modulation, over its [model] grid
    (``results.periodic``), done whole."""

    name = table = "periodic"
    heading = "Periodic steady state (`[periodic]`: a modulated system or a periodic [drive], Floquet)"
    asks = "a [periodic] table"
    output_sets = ("periodic",)
    takes_modulation = True
    companions = ("drive",)

    def parse_companion(self, name, table, simulation, params, own):
        """[drive] beside [periodic]: the schema's keys, a periodic envelope (kind 'sine') of a system with
        nonlinear mean-field dynamics; mean_field_start has no meaning (the run finds the limit cycle)."""
        from sde_com.simulation.drive import Drive

        table = dict(check_table(name, table))
        system = params.system
        if "periodic" in system.capabilities:
            raise ScenarioError("a modulated [system] takes no [drive]: its modulation is the periodic part")
        if "mean_field_dynamics" not in system.capabilities:
            raise ScenarioError(f"[periodic] with a [drive] needs a system with nonlinear mean-field dynamics: "
                                f"{system.capability_hints.get('mean_field_dynamics', system.name)}")
        if "mean_field_start" in table:
            raise ScenarioError("drive.mean_field_start has no meaning with [periodic] (the run finds the mean "
                                "field's limit cycle)")
        if table.get("kind", defaults("drive").get("kind")) != "sine":
            raise ScenarioError(f"drive.kind = {table.get('kind', defaults('drive').get('kind'))!r} is not "
                                "periodic: [periodic] takes a drive of kind 'sine'")
        try:
            drive = Drive(**_drive_fields(table))
        except UserError as exc:
            raise ScenarioError(str(exc)) from None
        if not drive.frequency > 0:
            raise ScenarioError(f"drive.frequency must be > 0 for a periodic state (its period is 2π/frequency), got "
                                f"{drive.frequency!r}")
        return table

    def check_tables(self, tables, params):
        """Something periodic: a modulated system, or a periodic [drive] of a system with mean-field dynamics."""
        system = params.system
        if "periodic" in system.capabilities or tables.get("drive") is not None:
            return
        if "mean_field_dynamics" in system.capabilities:
            raise ScenarioError(f"[periodic] on system {system.name!r} needs a periodic [drive] beside it (kind = "
                                "'sine'): under a constant drive its steady state is the ordinary one")
        raise ScenarioError(f"[periodic] needs something periodic: system {system.name!r} has no modulation "
                            f"({system.capability_hints.get('periodic', 'give [system] modulation')}) and no "
                            "mean-field dynamics for a [drive]")

    def variables(self, system):
        return variables_of("periodic")

    def kernel_modules(self, scenario):
        return periodic_modules(scenario.system, drive=scenario.tables.get("drive") is not None)

    def default_figure(self, sizes, variables):
        """The period-averaged E_N (the growth rate where the system has no pair of modes) over the swept
        parameters: lines over one, a map over two; at a single point E_N over the phase, or (one mode) the
        covariance at each phase."""
        if "growth_rate" not in variables:
            return None
        swept = [d for d in variables["growth_rate"] if sizes.get(d, 1) > 1]
        shown = "logneg_periodic_mean" if sizes.get("pair", 0) and "logneg_periodic_mean" in variables else \
            "growth_rate"
        if len(swept) == 2:
            return {"kind": "map", "x": swept[0], "y": swept[1], "variable": shown}
        if len(swept) == 1:
            return {"kind": "lines", "x": swept[0], "y": [shown]}
        if shown != "growth_rate" and "logneg_periodic" in variables:
            return {"kind": "lines", "x": "phase", "y": ["logneg_periodic"]}
        if "cov_periodic" in variables and sizes.get("phase", 0) <= MAX_PANELS:  # a panel per phase
            return {"kind": "matrix", "variable": "cov_periodic"}
        return None

    def outline(self, scenario):
        system = scenario.system
        pairs = len(system.modes) * (len(system.modes) - 1) // 2
        sizes = {"phase": int(scenario.tables["periodic"]["samples"]), "row": system.dimension,
                 "col": system.dimension, "pair": pairs, "multiplier": system.dimension}
        from sde_com.results.periodic import MEAN_FIELD

        # the mean field's values along a drive's limit cycle: those the system declares, and only under a drive
        absent = (undeclared(system, MEAN_FIELD) if scenario.tables.get("drive") is not None
                  else dict.fromkeys(MEAN_FIELD, "no mean field: the limit cycle's values come with a [drive]"))
        return RunOutline("periodic", sizes, quadratures=tuple(system.quadratures), absent=tuple(absent))

    def parse_table(self, table, simulation, dt_study, params, base=None):
        if table is None:
            return None
        if simulation is not None or dt_study is not None:
            raise ScenarioError("[periodic] is a steady state (the periodic one): give no [simulate] table")
        return {**defaults("periodic"), **check_table("periodic", table)}

    def cost(self, scenario, units):
        return steady_cost(scenario, units, SECONDS_PER_POINT_PERIODIC, branches=1)  # one periodic state a point

    def run(self, scenario, trace_sink=None):
        from sde_com.results.periodic import periodic_sweep
        from sde_com.simulation.drive import Drive

        table, drive = scenario.tables["periodic"], scenario.tables.get("drive")
        ds = periodic_sweep(int(table["samples"]), drive=None if drive is None else Drive(**_drive_fields(drive)),
                            system=scenario.system, **dict(scenario.parameters))
        return ds.assign_attrs(periodic=json.dumps(table), **({"drive": json.dumps(drive)} if drive else {}))


SECONDS_PER_POINT_PERIODIC = 0.01  # a 4-quadrature system at 64 samples, measured 4–9 ms (the substeps vary)


# the closed loop's variables of a conditional ensemble (written only with [feedback])
LOOP_TRAJECTORY_VARIABLES = ("cov_feedback_sim", "cov_feedback_sim_err", "cov_feedback_moment", "zscore_feedback",
                             "feedback_force")


def _check_conditional_simulation(sim, dt_study, params) -> None:
    """What conditional trajectories take of [simulate]: a scheme that discretizes a record (exact or
    Euler–Maruyama), no burn-in, snapshots by save_every (the filter's start is the initial state's covariance)."""
    problems = [(dt_study is not None, "a single dt (no time-step study)"),
                (not get_scheme(sim.method).records,
                 f"method = {scheme_names(lambda s: s.records)} (a scheme that discretizes the record)"),
                (sim.burn_in != 0, "burn_in = 0 (the filter starts with the initial state)"),
                (sim.save_times is not None, "save_every, not save_times")]
    for bad, need in problems:
        if bad:
            raise ScenarioError(f"[[measure]] with [simulate] needs {need}")
    if sim.trajectories < 2:
        raise ScenarioError("[[measure]] with [simulate] needs trajectories >= 2 (the error bars need two)")


def _check_corners(system: LinearSystem, params: dict) -> None:
    """Run the grid's corners (each swept parameter at its smallest and largest value) through the steady
    state before any unit: the derived rates (κ, G₀, ε, n_th, Δ_F) are powers of the parameters, monotonic
    in each, so parameters that overflow the model do so at a corner, and the run is refused now (UserError
    naming the point) rather than when its unit runs. 2^k points for k swept parameters."""
    corners = {k: (sorted({min(v), max(v)}) if isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
                   else v) for k, v in params.items()}
    sweep_block(corners, 0, math.prod(len(v) for v in corners.values() if isinstance(v, list)), False,
                system=system)


def _check_linearization(skeleton: xr.Dataset) -> None:
    """Warn where the fluctuations are not small against the mean field (``mergers.linearization_checks``):
    wherever the steady state holds the mean-field photon numbers of the first modes (``photons``, then
    ``photons_reflected``)."""
    names = [v for v in ("photons", "photons_reflected") if v in skeleton]
    if not names or "cov" not in skeleton:
        return
    shape = (-1, skeleton.sizes["branch"])
    photons = np.stack([skeleton[v].values.reshape(shape) for v in names], axis=-1)
    d = skeleton.sizes["row"]
    fluct = fluctuation_numbers(skeleton["cov"].values.reshape(*shape, d, d), len(names))
    warn_of(linearization_checks(fluct, photons, skeleton["stable"].values.reshape(shape)), 0)


# the steady-state variables beside an ensemble of a system without a chain: its skeleton's only
_SKELETON = ("stable", "n_branches", "cov")


class SimulateKind(RunKind):
    """Time-domain ensembles at every sweep point ([simulate]): steady estimates, transients (snapshots) and
    recorded traces; blocks of trajectories at one operating point; traces streamed to the file."""

    name = "simulate"
    heading = "Time-domain ensembles (`[simulate]`), beside the steady state's variables"
    asks = "a [simulate] table"
    output_sets = ("simulate",)

    def selected(self, scenario) -> bool:
        return scenario.simulation is not None

    def variables(self, system):
        return SweepKind().variables(system) + variables_of("simulate")

    def outline(self, scenario):
        sim = scenario.simulation
        out = steady_outline(scenario.system, "simulate", simulation_sizes(sim, scenario.dt_study), sim.transient)
        if out.steady == "seam_sweep":  # beside the estimates, the steady state's skeleton only
            out = replace(out, absent=tuple(dict.fromkeys(
                (*out.absent, *(v for v in variables_of("seam_sweep") if v not in _SKELETON)))))
        return out

    def unwritable(self, scenario):
        why = super().unwritable(scenario)
        if fast_chain(scenario.system) is None:
            skipped = (*variables_of("seam_sweep"), *own_variables(scenario.system))
            why.update(dict.fromkeys((v for v in skipped if v not in _SKELETON), (
                "the steady state's, written by a run without [simulate] (with it: logneg_sim over every pair "
                "of modes)")))
        return why

    def run(self, scenario, trace_sink=None):
        return run_ensembles(scenario.simulation, scenario.parameters, trace_sink)

    def default_figure(self, sizes, variables):
        """The recorded traces where there are, else the estimates (over time, dt or a parameter)."""
        return {"kind": "traces"} if "trace" in variables else estimate_figure(sizes, variables)

    def plan(self, scenario):
        sim, system = scenario.simulation, scenario.system
        skeleton = prepare_simulation(sim, scenario.parameters, system)
        units = plan_units(sim, skeleton)
        _check_linearization(skeleton)
        return units

    def models(self, scenario, units):
        """The prepared model of every (point, branch) the units touch, built on the client (bad settings fail
        now, before any work) and shipped with the units, so that workers with another CPU or LAPACK cannot
        change a bit of e^{A dt}, L or the initial-state factor."""
        prepared = [_prepared_point(scenario, *pb) for pb in units.pairs]
        _warn_short_burn_in(scenario.simulation, prepared)
        return UnitModels(prepared, len(units.blocks), len(units))

    def run_unit(self, scenario, unit, model=None):
        return run_unit(scenario.simulation, scenario.parameters, unit, model, scenario.system)

    def merger(self, scenario, units, models, folder, state):
        return SimulationMerger(scenario, units, models, folder, state)

    def warm_up(self, scenario, units, models):
        """The stepper and the accumulators the units call, on a tiny input (``warm_up_kernels``)."""
        return functools.partial(warm_up_kernels, models[0], scenario.simulation) if units else None

    def describe(self, scenario, unit):
        return (f"{_point_of(scenario, unit.point)}, branch {unit.branch}, "
                f"trajectories {unit.first}..{unit.first + unit.count - 1}")


class DtStudyKind(SimulateKind):
    """A time-step study ([simulate] with a list of dt): one ensemble per dt, a leading ``dt`` dimension; run
    whole (one unit per dt would be the next refinement)."""

    name = "dt_study"
    heading = "Time-step study (`[simulate]` with a list of `dt`): the ensembles' variables over `dt`"
    asks = "a [simulate] table with a list of dt"

    def selected(self, scenario) -> bool:
        return bool(scenario.dt_study)

    def run(self, scenario, trace_sink=None):
        return time_step_study(scenario.simulation, scenario.dt_study, scenario.parameters)

    def plan(self, scenario):
        sim, system, params = scenario.simulation, scenario.system, scenario.parameters
        skeleton = prepare_simulation(sim, params, system)
        for dt in scenario.dt_study:  # bad settings fail here, before any work
            for u in plan_units(replace(sim, dt=dt), skeleton):
                if u.first == 0:
                    point_model(replace(sim, dt=dt), params, u.point, u.branch, system)
        return [WholeRun()]

    # done whole (RunKind's)
    models = RunKind.models
    run_unit = RunKind.run_unit
    merger = RunKind.merger
    describe = RunKind.describe

    def warm_up(self, scenario, units, models):
        return None


class SinglePointKind(RunKind):
    """A run at one operating point ([drive], [wigner], [detect]) of any system with the kind's capability,
    done whole."""

    record_table = True  # the table goes into the file's attrs

    @property
    def output_sets(self):
        return (self.name,)

    def variables(self, system):
        return variables_of(self.name)

    def outline(self, scenario):
        sim = scenario.simulation
        sizes = {**simulation_sizes(sim), **self.sizes(scenario)}
        return steady_outline(scenario.system, self.name, sizes, sim.transient)

    def sizes(self, scenario) -> dict[str, int]:
        """The dimensions the kind's own table adds (none by default)."""
        return {}

    def parse_table(self, table, simulation, dt_study, params, base=None):
        """The schema's checks, at one operating point, then the kind's needs of [simulate]."""
        if table is None:
            return None
        check_table(self.table, table)
        if any(isinstance(v, list) for v in params.values()):
            raise ScenarioError(f"[{self.table}] runs one operating point: every [model] value must be a scalar")
        table = dict(table)
        self.check_simulation(simulation, dt_study)
        table = self.check(table, base)
        check_kind_keys(self.table, table)
        return table

    def check_simulation(self, simulation, dt_study) -> None:
        raise NotImplementedError

    branch_key = False  # whether its table chooses the branch (``branch``)

    def branch(self, scenario: Scenario) -> int:
        """The mean-field branch the run is made at."""
        return 0

    def plan(self, scenario):
        """The whole run in one unit, once its operating point is known to have the branch it runs at."""
        system = scenario.system
        params = system.resolve(scenario.parameters)
        ops = points(system, params)
        n = len(ops)
        branch = self.branch(scenario)
        if not 0 <= branch < n:
            what = (f"{self.name}.branch = {branch} does not exist" if self.branch_key else
                    f"[{self.name}] runs at mean-field branch {branch}, which does not exist")
            raise UserError(f"{what}: this operating point has {n} mean-field branch(es)"
                            f"{f', 0 .. {n - 1}' if n else ''}")
        op = ops[branch]
        out = system.mean_field_outputs(op.mean_field, params)
        photons = [out[v] for v in ("photons", "photons_reflected") if v in out]
        if op.cov is not None and photons:
            warn_of(linearization_checks(fluctuation_numbers(op.cov[None, None], len(photons)),
                                         np.array([[photons]]), [[True]]), 0)
        return [WholeRun()]

    def check(self, table: dict, base: Path | None) -> dict:
        return table

    def run(self, scenario, trace_sink=None):
        ds = self.run_at(scenario, scenario.system, scenario.parameters)
        return _provenance(scenario, self.name if self.record_table else None, ds)

    def run_at(self, scenario: Scenario, system: LinearSystem, params: dict) -> xr.Dataset:
        raise NotImplementedError


class ModulatedKind(SinglePointKind):
    """A transient of a modulated system ([simulate] on a [system] with `modulation`, no other table): A(t), D(t)
    in the stepper, against the moment ODE and the periodic steady state (``simulation.periodic``)."""

    name = "modulated"
    capability = "periodic"
    heading = "Transient of a modulated system (`[simulate]` on a `[system]` with `modulation` or a Hamiltonian " \
              "periodic in t)"
    asks = "a [simulate] transient of a modulated [system]"
    takes_modulation = True
    record_table = False

    def selected(self, scenario) -> bool:
        system = getattr(scenario, "system", None)
        return (system is not None and "periodic" in system.capabilities and scenario.simulation is not None
                and not any(v is not None for v in scenario.tables.values()))

    def parse_table(self, table, simulation, dt_study, params, base=None):
        """No table of its own: a transient at one point, with a single dt."""
        from sde_com.simulation.drive import check_settings

        if dt_study or not simulation.transient:
            raise ScenarioError("a modulated system's [simulate] is a transient (save_times or save_every) with a "
                                "single dt; its steady state is [periodic]")
        swept = [k for k, v in params.items() if isinstance(v, list)]
        if swept:
            raise ScenarioError(f"a modulated system's [simulate] transient runs one operating point: [model] sweeps "
                                f"{swept}; give scalars (or run [periodic] over the grid)")
        from sde_com.simulation.periodic import check_transient

        try:
            check_settings(simulation, periodic=True)
        except UserError as exc:
            raise ScenarioError(f"[simulate] {exc}") from exc
        try:
            check_transient(params.system, dict(params), simulation)  # its messages name their keys
        except UserError as exc:
            raise ScenarioError(str(exc)) from exc
        return None

    def kernel_modules(self, scenario):
        return periodic_modules(scenario.system) + VARYING_MODULES

    def default_figure(self, sizes, variables):
        """E_N(t) (its estimate over time, against the moment ODE)."""
        return estimate_figure(sizes, variables) if "cov_periodic_ref" in variables else None

    def plan(self, scenario):
        return [WholeRun()]

    def run_at(self, scenario, system, params):
        from sde_com.simulation.periodic import modulated_dataset

        return modulated_dataset(system, params, scenario.simulation)


def _check_resolved(table: dict, dt: float, end: float) -> None:
    """The drive's fastest change must span steps: the mean fields are integrated along it, and a change far
    faster than dt would take that integration (and the run) forever. A switch-on or pulse outside the run
    (``end``: its length) is warned of."""
    t = {**defaults("drive"), **table}
    kind = t["kind"]
    if kind == "ramp" and t["rise_time"] < 2 * dt or kind == "pulse" and t["width"] < 2 * dt:
        key = "rise_time" if kind == "ramp" else "width"
        raise ScenarioError(f"drive.{key} = {t[key]:g} is shorter than 2 dt = {2 * dt:g} (unit: 1/ω_ref): the step "
                            "cannot follow it; use a smaller dt or a slower drive")
    if kind == "sine" and abs(t["frequency"]) * dt > MAX_PHASE_STEP:
        raise ScenarioError(f"drive.frequency = {t['frequency']:g} is too fast for dt = {dt:g}: frequency·dt must be "
                            f"<= {MAX_PHASE_STEP} (unit: ω_ref)")
    reach = 10 * t["width"] if kind == "pulse" else 0.0  # a Gaussian is ~e⁻⁵⁰ ten widths out
    if kind in ("ramp", "pulse") and (t["start"] - reach >= end or kind == "pulse" and t["start"] + reach <= 0):
        warnings.warn(f"drive.start = {t['start']:g}: the {kind} lies outside the run (0 to {end:g}, unit: "
                      "1/ω_ref), so the drive stays off throughout", RunWarning, stacklevel=2)
    if kind == "samples" and len(t["times"]) > 1 and np.min(np.diff(t["times"])) < dt:
        raise ScenarioError(f"drive samples {np.min(np.diff(t['times'])):g} apart are closer than dt = {dt:g}: "
                            "the step cannot follow them; resample the drive or use a smaller dt")


def _drive_fields(table: dict) -> dict:
    """[drive] keys → ``Drive`` fields (lists as tuples)."""
    return {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in table.items()
            if k != "mean_field_start"}


class DriveKind(SinglePointKind):
    """A time-dependent drive envelope ([drive]): the mean field and the fluctuations follow it."""

    name = table = "drive"
    capability = "mean_field_dynamics"
    heading = "Time-dependent drive (`[drive]`)"

    def default_figure(self, sizes, variables):
        """E_N(t) (its estimate over time, against the moment ODE)."""
        return estimate_figure(sizes, variables) if "drive" in variables else None

    def check_simulation(self, simulation, dt_study):
        from sde_com.simulation.drive import check_settings

        if simulation is None or not simulation.transient or dt_study:
            raise ScenarioError("[drive] needs a [simulate] transient (save_times or save_every) with a single dt")
        try:
            check_settings(simulation)
        except UserError as exc:
            raise ScenarioError(f"[simulate] {exc}") from exc

    def parse_table(self, table, simulation, dt_study, params, base=None):
        table = super().parse_table(table, simulation, dt_study, params, base)
        if table is not None:
            _check_resolved(table, simulation.dt, simulation.total_time)
        return table

    def check(self, table, base):
        """``file``: a two-column text file of samples, relative to the scenario file, read into times/values."""
        from sde_com.simulation.drive import Drive, load_samples

        if "file" in table:
            if table.get("kind", "samples") != "samples" or "times" in table or "values" in table:
                raise ScenarioError("drive.file needs kind = 'samples' (or no kind) and no times/values")
            try:
                table["times"], table["values"] = load_samples((base or Path(".")) / table.pop("file"))
            except ValueError as exc:
                raise ScenarioError(f"[drive] {exc}") from exc
            table["kind"] = "samples"
        try:
            Drive(**_drive_fields(table))
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"[drive] {exc}") from exc
        return table

    def run_at(self, scenario, system, params):
        from sde_com.simulation.drive import Drive, drive_dataset

        start = scenario.drive.get("mean_field_start", defaults("drive")["mean_field_start"])
        drive = Drive(**_drive_fields(scenario.drive))
        return drive_dataset(system, params, drive, scenario.simulation, mean_field_start=start)


class WignerKind(SinglePointKind):
    """The truncated-Wigner check of the linearization at one operating point ([wigner])."""

    name = table = "wigner"
    capability = "truncated_wigner"
    heading = "Truncated-Wigner check (`[wigner]`)"
    record_table = False

    def default_figure(self, sizes, variables):
        """The nonlinearity in units of its own error, entry by entry."""
        return {"kind": "matrix", "variable": "difference_z"} if "difference_z" in variables else None

    def kernel_modules(self, scenario):
        return (*super().kernel_modules(scenario), "kernels.wigner")

    def check_simulation(self, simulation, dt_study):
        if (simulation is None or not simulation.scheme.raw_noise or simulation.transient or dt_study
                or simulation.traces or simulation.trajectories < 2):
            raise ScenarioError("[wigner] needs a [simulate] table with method = 'em', a single dt, no snapshots, "
                                "no traces (it records none) and trajectories >= 2 (its errors come from the spread "
                                "over trajectories)")

    branch_key = True

    def branch(self, scenario):
        return int({**defaults("wigner"), **scenario.wigner}["branch"])

    def run_at(self, scenario, system, params):
        from sde_com.simulation.wigner import wigner_dataset

        return wigner_dataset(system, params, scenario.simulation, self.branch(scenario))


class DetectKind(SinglePointKind):
    """The detector's view ([detect]): homodyne records, output spectra, filtered-mode E_N at one point."""

    name = table = "detect"
    capability = "output_ports"
    heading = "Detector's view (`[detect]`)"

    def default_figure(self, sizes, variables):
        """The output spectra, Welch against the transfer function, and the filtered-mode E_N."""
        return {"kind": "spectra"} if "spectrum_welch" in variables else None

    def plan(self, scenario):
        check_detect(scenario)
        return super().plan(scenario)

    def sizes(self, scenario):
        from sde_com.simulation.detection import welch_bins_kept

        table = {**defaults("detect"), **scenario.detect}
        return {"bandwidth": len(table["filter_bandwidths"]), "omega": welch_bins_kept(table["segment"])}

    def check_simulation(self, simulation, dt_study):
        if (simulation is None or not simulation.scheme.raw_noise or not simulation.traces
                or simulation.trace_every != 1 or simulation.save_times is not None or dt_study):
            raise ScenarioError("[detect] needs a [simulate] table with method = 'em', traces >= 1 recorded at "
                                "every step (no save_times; save_every = dt or absent) and a single dt")

    def run_at(self, scenario, system, params):
        from sde_com.simulation.detection import detection_dataset

        t = {**defaults("detect"), **scenario.detect}  # absent keys: the schema's defaults
        return detection_dataset(system, params, scenario.simulation, t.get("mode"), t.get("partner"),
                                 float(t["theta"]), int(t["segment"]), tuple(t["filter_bandwidths"]),
                                 float(t["filter_center"]))


def check_detect(scenario) -> None:
    """The [detect] table against its run (before any work): the Welch segment within the record, distinct
    bandwidths, a detected mode with an output port, a partner, a stable branch and a port that carries its
    mode's noise (``detection.detected_branch``)."""
    from sde_com.simulation.detection import detected_branch

    samples = scenario.simulation.n_steps + 1
    table = {**defaults("detect"), **scenario.detect}
    segment, bandwidths = table["segment"], list(table["filter_bandwidths"])
    if len(set(bandwidths)) < len(bandwidths):
        raise UserError(f"detect.filter_bandwidths repeats a value ({bandwidths}): each is one filtered mode")
    if segment > samples:
        raise UserError(f"detect.segment = {segment} is longer than the record ({samples} samples of dt); "
                        f"at most {samples}")
    system = scenario.system
    detected_branch(system, system.resolve(scenario.parameters), table.get("mode"), table.get("partner"))


# mean-field output variables: a system writes those it declares (mean_field_variables)
_MEAN_FIELD_VARIABLES = ("photons", "photons_reflected", "coupling", "coupling_reflected", "displacement",
                         "detuning_effective", "detuning_bare")


def undeclared(system: LinearSystem, names) -> dict[str, str]:
    """The mean-field variables among ``names`` that ``system`` does not declare → why it cannot write them."""
    return {v: f"a mean-field value, which system {system.name!r} does not declare (LinearSystem."
               "mean_field_variables)" for v in names if v in _MEAN_FIELD_VARIABLES
            and v not in system.mean_field_variables}


def _provenance(scenario, table: str | None, ds: xr.Dataset) -> xr.Dataset:
    """A single-point run's attrs: its [simulate] settings and (``table``) its own table, as written."""
    ds.attrs["simulation"] = json.dumps(settings_to_dict(scenario.simulation))
    if table is not None:
        ds.attrs[table] = json.dumps(getattr(scenario, table))
    return ds


# in the order kind_of tries them: a single-point table, then a dt study, [simulate], the sweep
RUN_KINDS: dict[str, RunKind] = {}


def register_run_kind(kind: RunKind) -> RunKind:
    """Add a run kind (an instance) to ``RUN_KINDS`` (from outside the package too: a plug-in). ``kind_of``
    tries the kinds in registration order, then the built-in kinds that select on [simulate] or on nothing
    (``_FALLBACKS``: a dt study, an ensemble, a steady-state sweep). A kind with a ``table`` is selected by that
    table, which the scenario schema must know (``runs.schema.register_table``). TypeError for a taken name."""
    if not isinstance(kind, RunKind) or not kind.name:
        raise TypeError(f"a run kind is a RunKind instance with a name, got {kind!r}")
    if kind.name in RUN_KINDS:
        raise TypeError(f"run kind {kind.name!r} is already registered")
    RUN_KINDS[kind.name] = kind
    order = sorted(RUN_KINDS, key=lambda k: _FALLBACKS.index(k) + 1 if k in _FALLBACKS else 0)
    for name in order:  # re-insert in that order
        RUN_KINDS[name] = RUN_KINDS.pop(name)
    return kind


_FALLBACKS = ("dt_study", "simulate", "sweep")  # selected by [simulate] (with a dt list) or by nothing: tried last
# in the order kind_of tries them: [periodic] before [drive] (a periodic drive rides on [periodic])
for _kind in (PeriodicKind(), DriveKind(), WignerKind(), DetectKind(), ConditionalKind(), ModulatedKind(),
              DtStudyKind(), SimulateKind(), SweepKind()):
    register_run_kind(_kind)


def output_reference_markdown() -> str:
    """The docs' output reference: the catalogue's variables, under the run kinds that write them."""
    from sde_com.results.catalogue import output_reference_markdown as reference

    listed, kinds = set(), []
    for kind in reversed(RUN_KINDS.values()):  # the steady state first, then ensembles, then the tables
        sets = tuple(s for s in kind.output_sets if s not in listed)
        listed.update(sets)
        if sets:
            kinds.append((kind.heading, sets))
    return reference(kinds)


def default_figure(sizes, variables) -> dict | None:
    """The figure of an output whose run kind is not known (a Dataset from Python, an older file): that of the
    first kind that claims it (``RunKind.default_figure``), else None."""
    return next((f for k in RUN_KINDS.values() if (f := k.default_figure(sizes, variables)) is not None), None)


def companion_tables() -> dict[str, RunKind]:
    """Tables that ride on another kind's table → that kind (``RunKind.companions``)."""
    return {name: k for k in RUN_KINDS.values() for name in k.companions}


def single_point_tables() -> tuple[str, ...]:
    """The tables that select a run kind (at most one per scenario)."""
    return tuple(k.table for k in RUN_KINDS.values() if k.table)


def kind_of(scenario) -> RunKind:
    """The kind of a run: of a Scenario, or of anything with its attributes (the single-point tables,
    ``simulation`` and ``dt_study``), such as the raw tables while a scenario is parsed."""
    return next(k for k in RUN_KINDS.values() if k.selected(scenario))


def require_capability(kind: RunKind, system: LinearSystem) -> None:
    """Refuse (UserError) a kind that needs a capability the system lacks."""
    if kind.capability is not None:
        require(system, kind.capability, kind.name)


def _store_cov(scenario: Scenario) -> bool:
    """Whether a sweep writes V (``cov``): see ``SweepKind.variables_written``."""
    return "cov" in RUN_KINDS["sweep"].variables_written(scenario)


def _revival(scenario: Scenario) -> bool | None:
    return None if scenario.variables is None else bool({"revival", "logneg_max"} & set(scenario.variables))


def _point_of(scenario: Scenario, point: int) -> dict:
    """The parameters of flat sweep point ``point`` (of the scenario's system)."""
    values, dims, shape, _ = parameter_grid(scenario.parameters, scenario.system)
    index = np.unravel_index(point, shape)
    return {d: values[d][i].item() for d, i in zip(dims, index, strict=True)}


class UnitModels(Sequence):
    """Each unit's prepared model (aligned with a ``SimulationPlan``), one per (point, branch), shared by its
    units: a run of many units holds as many models as pairs."""

    def __init__(self, per_pair: list, per_pair_units: int, n_units: int):
        self.per_pair, self.per_pair_units, self.n_units = per_pair, per_pair_units, n_units

    def __len__(self) -> int:
        return self.n_units

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(self.n_units)[i]]
        return self.per_pair[range(self.n_units)[i] // self.per_pair_units]


BURN_IN_RELAXATIONS = 5.0  # e⁻⁵ of the mean's, e⁻¹⁰ of the covariance's initial offset is left after it


def _warn_short_burn_in(sim, models: list) -> None:
    """Time averages that start before the system has relaxed from an initial state other than the steady
    one are biased toward it: warn when burn_in is shorter than BURN_IN_RELAXATIONS relaxation times 1/r,
    r = min over the eigenvalues λ of A of −Re λ (the slowest decay; units of ω_ref)."""
    if sim.transient or isinstance(sim.initial, str) and sim.initial == "steady":
        return
    rates = [-max_growth_rate(m.A) for m in models if m.stable]
    short = [r for r in rates if sim.burn_in * r < BURN_IN_RELAXATIONS]
    if short:
        slowest = min(short)
        warnings.warn(f"burn_in = {sim.burn_in:g} is shorter than {BURN_IN_RELAXATIONS:g} relaxation times at "
                      f"{len(short)} of {len(rates)} stable point(s) (the slowest relaxes at {slowest:.3g} ω_ref: "
                      f"{BURN_IN_RELAXATIONS / slowest:.3g}/ω_ref needed): the time averages start from initial = "
                      f"{sim.initial if isinstance(sim.initial, str) else 'the given covariance'} and are biased "
                      "toward it", RunWarning, stacklevel=2)


def _prepared_point(scenario: Scenario, point: int, branch: int):
    """``point_model`` at (point, branch); a failed factorization of valid input is a NumericalError there."""
    try:
        return point_model(scenario.simulation, scenario.parameters, point, branch, scenario.system)
    except np.linalg.LinAlgError as exc:
        raise NumericalError(f"preparing the time-domain model failed ({exc}) at {_point_of(scenario, point)}, "
                             f"branch {branch}, dt = {scenario.simulation.dt:g}") from exc
