"""Scenario files: TOML data (never code) → validated run plan → Dataset.

A scenario runs a system: the one its ``[system]`` table names (or gives by its matrices), else the default,
the spinning resonator. Its ``[model]`` keys are the system's parameters (``LinearSystem.parameters``), each a
scalar, a list, or a range ``{start, stop, num}`` (num ≥ 1 points, both ends included); keys left out take
their defaults. Optional: ``title``, ``description``, ``[simulate]``, one of ``[drive]``,
``[wigner]``, ``[detect]``, ``[output]`` (``variables``: which data variables to keep) and ``[plot]`` (how
``sde-com plot`` draws it; see ``sde_com.runs.plotspec``). Every key, its type, unit, default and range are declared
once in ``sde_com.runs.schema``, which the checks here read; what remains here are the checks across keys.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import xarray as xr

from sde_com.errors import RunWarning, UserError
from sde_com.inputs import MAX_SCENARIO_BYTES, check_input_file
from sde_com.physics.hamiltonian import HAMILTONIAN_KEYS
from sde_com.physics.matrix import MatrixSystem
from sde_com.physics.system import LinearSystem, get_system
from sde_com.results.sweep import Grid, as_system, same_system
from sde_com.runs.kinds import (
    RUN_KINDS,
    RunKind,
    companion_tables,
    default_figure,
    finish_dataset,
    kind_of,
    require_capability,
    single_point_tables,
)
from sde_com.runs.plotspec import PLOT_KINDS, RunOutline, check_output  # noqa: F401 (PLOT_KINDS: re-exported, the schema's)
from sde_com.runs.plotspec import check_plot as _check_plot
from sde_com.runs.schema import ScenarioError, check_keys, check_table, check_top_level, defaults
from sde_com.simulation.assemble import reference_rates
from sde_com.simulation.simulate import SimulationSettings
from sde_com.spec import make_table


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: sweep parameters, output selection, plot spec and the source text."""

    parameters: dict
    simulation: SimulationSettings | None = None
    dt_study: tuple[float, ...] | None = None
    tables: Mapping[str, dict] = field(default_factory=dict)  # the single-point table of its kind, by name
    variables: tuple[str, ...] | None = None
    plot: dict = field(default_factory=dict)
    title: str = ""
    description: str = ""
    text: str = ""
    name: str = ""
    system: LinearSystem = field(default_factory=lambda: as_system())  # the [system] table's, or the default

    def __post_init__(self):  # the parameters carry their grid, of this scenario's system
        if not (isinstance(self.parameters, Grid) and same_system(self.parameters.system, self.system)):
            object.__setattr__(self, "parameters", Grid(self.parameters, self.system))

    # the built-in single-point tables by name (None: absent); a plug-in kind reads ``tables``
    drive = property(lambda self: self.tables.get("drive"))
    wigner = property(lambda self: self.tables.get("wigner"))
    detect = property(lambda self: self.tables.get("detect"))

    @property
    def dimensions(self) -> list[str]:
        """The swept parameters (lists and ranges), in file order."""
        return [k for k, v in self.parameters.items() if isinstance(v, list)]

    @property
    def kind(self) -> RunKind:
        """The kind of run (``sde_com.runs.kinds.RUN_KINDS``)."""
        return kind_of(self)

    @property
    def run_outline(self) -> RunOutline:
        """What the run writes beside the swept parameters (its kind's ``outline``, with its default figure):
        for ``check_plot``."""
        return replace(self.kind.outline(self), figure=default_figure)  # the rule `sde-com plot` applies


def _first_repeat(values):
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


def _parse_value(name: str, value):
    """A checked [model] value: a range becomes its list of points."""
    if isinstance(value, dict):
        with np.errstate(over="ignore", invalid="ignore"):
            points = np.linspace(float(value["start"]), float(value["stop"]), value["num"])
        if not np.all(np.isfinite(points)):  # stop − start beyond the largest float
            raise ScenarioError(f"model.{name}: a range from {value['start']:g} to {value['stop']:g} spans more "
                                "than the largest number (stop − start overflows); give a narrower range")
        return points.tolist()
    return value


def parse_scenario(text: str, name: str = "", base: Path | None = None) -> Scenario:
    """Validate scenario TOML text; raise ScenarioError naming the bad key and the allowed values."""
    raw = _load_toml(text, name)
    check_top_level(raw)
    system = _parse_system(raw)
    params = _parse_model(raw.get("model", {}), system)
    simulation, dt_study = _parse_simulation(raw.get("simulate"))
    kind = _kind_of_tables(raw, simulation, dt_study, system)
    if "periodic" in system.capabilities and not kind.takes_modulation:
        raise ScenarioError(f"system (modulated): a modulated system runs [periodic] (its periodic steady state) or a "
                            f"[simulate] transient alone, not {kind.asked_by()}")
    variables = _parse_output(raw.get("output"), kind, system)
    plot = check_table("plot", raw.get("plot", {}))
    _check_time_axis(simulation, params, system)
    single = {}
    own = kind.parse_table(raw.get(kind.table) if kind.table else None, simulation, dt_study, params, base)
    if kind.table is not None:  # (a kind without a table still checks the settings it runs with)
        single[kind.table] = own
    for table, owner in companion_tables().items():  # [feedback] beside [[measure]]: only with its kind's table
        if table in raw and table != kind.table:  # ([drive] is also a kind's own table)
            if owner is not kind:
                raise ScenarioError(f"[{table}] needs {owner.asked_by()} beside it")
            single[table] = kind.parse_companion(table, raw[table], simulation, params, single[kind.table])
    kind.check_tables(single, params)
    scenario = Scenario(params, simulation, dt_study, variables=variables, plot=plot, title=raw.get("title", ""),
                        description=raw.get("description", ""), text=text, name=name, system=system,
                        tables=single)
    check_output(variables, kind.unwritable(scenario))  # a variable this run cannot write
    if plot:  # a figure that cannot be drawn from this run's output fails here, before any work
        check_plot(plot, params, variables, run=scenario.run_outline)
    return scenario


def _load_toml(text: str, name: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{name or 'scenario'}: not valid TOML: {exc}") from exc
    except RecursionError:
        raise ScenarioError(f"{name or 'scenario'}: nested too deeply to read (arrays or tables within "
                            "thousands of others)") from None


def _kind_of_tables(raw: dict, simulation, dt_study, system: LinearSystem) -> RunKind:
    """The run kind the tables ask for (``kinds.kind_of``); at most one single-point table, whose kind's
    capability the system must have."""
    tables = single_point_tables()
    riding = {t for t, owner in companion_tables().items() if owner.table in raw}  # [drive] beside [periodic]
    given = [t for t in tables if t in raw and t not in riding]
    if len(given) > 1:
        raise ScenarioError(f"give at most one of the tables {['[' + n + ']' for n in tables]}, got {given}")
    kind = kind_of(SimpleNamespace(simulation=simulation, dt_study=dt_study, system=system,
                                   tables={t: raw[t] for t in given}))
    try:
        require_capability(kind, system)
    except UserError as exc:
        lacks = system.capability_hints.get(kind.capability)
        raise ScenarioError(f"[{kind.table}] needs the capability {kind.capability!r}: "
                            f"{lacks or f'system {system.name!r} lacks it'}") from exc
    return kind


_HAMILTONIAN_TABLE = ("modes", *(k.name for k in HAMILTONIAN_KEYS), "time_scale")


def _parse_system(raw: dict) -> LinearSystem:
    """[system] → the system it names (``get_system``: [model] then holds its parameters), the
    ``HamiltonianSystem`` its Hamiltonian and dissipators give ([model] then sets or sweeps the parameters
    whose defaults it gives), or the ``MatrixSystem`` its matrices give (checked:
    ``physics.matrix.check_matrices``; it replaces [model], so both are refused). Absent: the default system
    (``sweep.DEFAULT_SYSTEM``, the spinning resonator)."""
    table = raw.get("system")
    if table is None:
        return as_system()
    table = check_table("system", table)
    if "name" in table:
        given = sorted(set(table) - {"name"})
        if given:
            raise ScenarioError(f"[system] name = {table['name']!r} names a registered system, whose parameters "
                                f"go in [model]; {given} belong to a system given by its Hamiltonian or matrices")
        try:
            return get_system(table["name"])
        except UserError as exc:
            raise ScenarioError(f"system.name: {exc}") from exc
    if "hamiltonian" in table:
        return _hamiltonian_system(table)
    if "model" in raw:
        raise ScenarioError("give [model] (the parameters of a system: the spinning resonator's, or those of the "
                            "system [system] names or writes as a Hamiltonian) or [system] matrices, not both")
    table = {**defaults("system"), **table}
    for key in ("modes", "drift", "diffusion"):
        if key not in table:
            raise ScenarioError(f"[system] needs 'name', 'hamiltonian' (with 'modes'), or {key!r} with the other "
                                "matrices (see the scenario reference)")
    given = sorted(set(table) & {k.name for k in HAMILTONIAN_KEYS[1:]})
    if given:
        raise ScenarioError(f"[system] gives matrices: {given} belong to a system given by its Hamiltonian (give "
                            "'hamiltonian' with them, or leave them out)")
    if isinstance(table.get("time_scale"), str):
        raise ScenarioError(f"system.time_scale = {table['time_scale']!r}: a system given by its matrices has no "
                            "parameters; give a number (s-1)")
    try:
        return MatrixSystem(**table)
    except UserError as exc:
        raise ScenarioError(f"[system] {exc}") from exc


def _hamiltonian_system(table: dict) -> LinearSystem:
    """A [system] table by Hamiltonian (``physics.hamiltonian.HamiltonianSystem``): its keys only."""
    from sde_com.physics.hamiltonian import HamiltonianSystem

    extra = sorted(set(table) - set(_HAMILTONIAN_TABLE))
    if extra:
        raise ScenarioError(f"[system] gives a Hamiltonian: {extra} belong to a system given by its matrices; a "
                            f"Hamiltonian system takes {list(_HAMILTONIAN_TABLE)}")
    if "modes" not in table:
        raise ScenarioError("[system] gives a Hamiltonian without 'modes': list its mode names, e.g. "
                            "modes = [\"a\", \"b\"]")
    try:
        return HamiltonianSystem(**table)
    except UserError as exc:
        raise ScenarioError(str(exc)) from exc


def _check_time_axis(simulation, params, system: LinearSystem) -> None:
    """Snapshots and traces have a time axis in seconds: one ω_ref over the grid."""
    if simulation is not None and (simulation.transient or simulation.traces):
        try:
            rates = reference_rates(system, params)
        except UserError:
            return  # a bad point: refused with its own message when the run is planned
        if len(rates) > 1:
            raise ScenarioError(f"[model] the reference rate ω_ref of system {system.name!r} cannot vary over a "
                                "run with snapshots or traces (their time axis is in seconds): sweep nothing it "
                                "depends on (the resonator's and the single cavity's omega_m)")


MAX_VALUES = 1_000_000  # values of one [model] key, listed or as a range (the range key's own limit)


def _parse_model(table, system: LinearSystem) -> Grid:
    """[model] → sweep parameters (ranges expanded), each value checked against the parameters of ``system``
    and the grid, which they carry from here down (``sweep.Grid``)."""
    schema = make_table("model", "", *system.parameters.values())
    params = {k: _parse_value(k, v) for k, v in check_table("model", table, schema=schema).items()}
    for k, v in params.items():
        if isinstance(v, list):
            if len(v) > MAX_VALUES:
                raise ScenarioError(f"model.{k} lists {len(v)} values; at most {MAX_VALUES} a key")
            repeated = _first_repeat(v)
            if repeated is not None:
                raise ScenarioError(f"model.{k} gives the value {repeated!r} twice: each value is one point of "
                                    "the sweep's axis")
    try:  # what the schema cannot say (e.g. a grid that the sweep refuses); the run's grid, built once
        return Grid(params, system)
    except ValueError as exc:
        raise ScenarioError(f"[model] {exc}") from exc


def _parse_simulation(table) -> tuple[SimulationSettings | None, tuple[float, ...] | None]:
    """[simulate] → (settings, the dt list of a time-step study or None)."""
    if table is None:
        return None, None
    table = dict(check_table("simulate", table))
    dts = table.get("dt")
    if isinstance(dts, list):  # a time-step study: one run per dt, a `dt` dimension
        table["dt"] = dts[0]
    try:  # the checks across keys (save_times within the duration, traces <= trajectories, ...)
        settings = SimulationSettings(**table)
        if isinstance(dts, list):
            if settings.transient or settings.traces:
                raise UserError("a list of dt (a time-step study) cannot record snapshots or traces")
            if _first_repeat(dts) is not None:
                raise UserError(f"dt gives the value {_first_repeat(dts)!r} twice: each dt is one run of the study")
            studied = [replace(settings, dt=dt) for dt in dts]  # validates each
            _warn_off_grid(studied)
            return settings, tuple(float(x) for x in dts)
        _warn_off_grid([settings])
        return settings, None
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"[simulate] {exc}") from exc


def _warn_off_grid(runs: list[SimulationSettings]) -> None:
    """Times that are not whole steps of dt are rounded to the nearest step: say so (a RunWarning), once."""
    notes = [note for s in runs for note in s.off_grid()]
    if notes:
        warnings.warn("[simulate] times are rounded to whole steps: " + "; ".join(notes), RunWarning, stacklevel=3)


def _parse_output(table, kind: RunKind, system: LinearSystem) -> tuple[str, ...] | None:
    """[output] variables: names of the variables this kind of run produces for ``system``."""
    if table is None:
        return None
    variables = check_keys("output", table).get("variables")
    if variables is None:
        return None
    allowed = list(kind.variables(system))
    if isinstance(variables, list) and all(isinstance(v, str) for v in variables):
        bad = [v for v in variables if v not in allowed]
        if not variables:
            raise ScenarioError(f"output.variables is empty; allowed: at least one of {allowed} (or no key: the "
                                "run's defaults)")
        for v in bad:  # another run kind's: say what runs it
            other = next((k for k in reversed(RUN_KINDS.values()) if v in k.variables(system)), None)
            if other is not None:
                raise ScenarioError(f"output.variables: {v!r} cannot be written by this run (allowed: {allowed}): "
                                    f"give {other.asked_by()} for it")
        if bad:
            raise ScenarioError(f"output.variables: unknown {bad}; allowed: {allowed}")
        if _first_repeat(variables) is not None:
            raise ScenarioError(f"output.variables names {_first_repeat(variables)!r} twice")
    check_table("output", table)
    return tuple(variables)


def check_plot(plot: dict, params: dict, variables: tuple[str, ...] | None, *,
               run: RunOutline | None = None) -> None:
    """Validate [plot] against the run it will draw, so that a bad figure spec fails before any work.

    ``run``: what the run writes beside the sweep (``Scenario.run_outline``; None: a steady-state sweep, [model]
    only). The defaults and checks are ``sde_com.runs.plotspec``'s (one home), applied to the run's outline.
    """
    _check_plot(plot, params, variables, run=run)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    try:
        check_input_file(path, "scenario", MAX_SCENARIO_BYTES)
    except UserError as exc:
        raise ScenarioError(str(exc)) from None
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading byte-order mark (some editors write one) is dropped
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"cannot read scenario {str(path)!r}: not UTF-8 text ({exc.reason})") from exc
    return parse_scenario(text, name=path.name, base=path.parent)


def run_scenario(scenario: Scenario, trace_sink=None) -> xr.Dataset:
    """Run the scenario (sweep, and the time-domain runs of [simulate]) → Dataset with provenance attrs.

    ``trace_sink``: see ``simulate.simulate``; without it recorded traces are kept in the Dataset.
    """
    return finish_dataset(scenario, scenario.kind.run(scenario, trace_sink))
