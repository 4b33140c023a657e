"""The figure spec of a ``[plot]`` table, without matplotlib: its defaults, its checks, and the outline of a run.

``resolve_spec`` completes a ``[plot]`` table (possibly empty) from an output's outline (dimension sizes and
data variable → dimensions) and refuses, with ``PlotError`` saying why, a figure that cannot be drawn.
``sde_com.plot`` applies it to a Dataset before drawing; ``check_plot`` applies it before a run to the outline
that the run will write (``outline``: read from ``sde_com.results.catalogue``), so that a bad figure fails before any
work. Below ``sde_com.runs.scenario`` and ``sde_com.plot``: imports neither.

Defaults (keys left out): a run kind's own figure where it has one (``RunKind.default_figure``: the estimate
over time or dt, the z-score matrix of a single steady point, the recorded traces, the spectra of a detector's
view, the difference matrix of a truncated-Wigner check; ``estimate_figure`` here); else, one swept parameter
→ lines over it; two → lines over the one with more values, one line per value of the other when it has at
most 6 values (e.g. direction), else a map.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sde_com.errors import UserError
from sde_com.physics.resonator.drift import QUADRATURES
from sde_com.results.catalogue import RECORDED, SWEPT, default_variables, dims_in, variables_of
from sde_com.runs.schema import SCHEMA, ScenarioError, check_kind_keys

PLOT_KINDS: tuple[str, ...] = SCHEMA["plot"].keys["kind"].choices  # the schema's: one home


class PlotError(UserError):
    """A figure that cannot be drawn from this output; the message says why and what would work."""


# Dimensions that are not sweep parameters (time, quadratures, ...): never chosen as a default hue or panel.
INTERNAL_DIMS = ("branch", "row", "col", "time", "dt", "trajectory", "quadrature", "omega", "bandwidth", "mode",
                 "channel", "phase", "multiplier")
STRING_DIMS = ("direction", "quadrature", "row", "col", "pair")  # categorical: not an axis of a map
MATRIX_DIMS = ("row", "col")
# Default variable of a steady-state figure: the first of these in the output.
PREFERRED = ("logneg", "logneg_max", "revival", "coupling", "photons", "logneg_reflected", "logneg_optical",
             "coupling_reflected", "photons_reflected", "displacement", "sagnac_shift")
NOT_DRAWN = ("stable", "n_branches")
SMALL = 6  # a dimension with at most this many values is a hue (lines) rather than an axis (map)
MAX_LINES = 16  # lines per panel
MAX_PANELS = 16


def _names(spec: Mapping, key: str) -> list[str]:
    value = spec[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlotError(f"plot.{key} must be a list of names, got {value!r}")
    return value


def _name(spec: Mapping, key: str) -> str:
    value = spec[key]
    if not isinstance(value, str):
        raise PlotError(f"plot.{key} must be a name (a string), got {value!r}")
    return value


def _dim(spec: Mapping, key: str) -> str:
    """A dimension named by ``plot.KEY``; 'time_scaled' (ω_ref·t, how the file indexes time) is ``time``."""
    name = _name(spec, key)
    return "time" if name == "time_scaled" else name


def _swept(dims: Sequence[str], sizes: Mapping[str, int]) -> list[str]:
    """The sweep parameters among ``dims`` with more than one value, in order."""
    return [d for d in dims if d not in INTERNAL_DIMS and sizes.get(d, 1) > 1]


def _axis_dim(dims: Sequence[str], sizes: Mapping[str, int]) -> str | None:
    """The best x axis among ``dims``: the numeric one with the most values (detuning on a tie), else the first.

    The others become hues or panels: the dimension with few values is the one told apart by colour."""
    numeric = [d for d in dims if d not in STRING_DIMS]
    if numeric:
        return max(numeric, key=lambda d: (sizes.get(d, 1), d == "detuning"))
    return dims[0] if dims else None


def _preferred(variables: Mapping[str, Sequence[str]], ok=lambda dims: True) -> str | None:
    names = [v for v in PREFERRED if v in variables] + [v for v in variables if v not in PREFERRED]
    for name in names:
        dims = variables[name]
        if name not in NOT_DRAWN and "row" not in dims and "quadrature" not in dims and ok(dims):
            return name
    return None


def estimate_figure(sizes: Mapping[str, int], variables: Mapping[str, Sequence[str]]) -> dict | None:
    """The figure of an ensemble's estimates (a run kind's ``default_figure``): the estimate over time, dt or a
    swept parameter, or the z-score matrix of a single steady point; None where there is no estimate."""
    sims = [v[:-4] for v in variables if v.endswith("_sim") and f"{v}_err" in variables]
    if not sims:
        return None
    name = "logneg" if "logneg" in sims else sims[0]
    dims = variables[f"{name}_sim"]
    if "time" in dims or "dt" in dims or _swept(dims, sizes) or "zscore" not in variables:
        return {"kind": "estimate", "variable": name}
    return {"kind": "matrix", "variable": "zscore"}


def default_spec(sizes: Mapping[str, int], variables: Mapping[str, Sequence[str]],
                 special: Mapping | None = None) -> dict:
    """The figure drawn without a ``[plot]`` kind: ``special``, the run kind's own (its ``default_figure``), or
    one chosen from the output's dimensions and variables.

    One or two swept parameters always give a figure that ``resolve_spec`` accepts: lines over the parameter
    with more values (one line per value of the other when it has at most ``SMALL`` values or is a string
    such as direction), else a map over both."""
    swept = _swept(list(sizes), sizes)
    if len(swept) > 2:
        raise PlotError(f"the output is swept over {len(swept)} parameters {swept}: give a [plot] table "
                        "(kind = 'lines' with x, hue and panel, or 'map' with x and y) to say how to draw it")
    if special is not None:
        return dict(special)
    if not swept:
        if "cov" in variables:
            return {"kind": "matrix", "variable": "cov"}
        raise PlotError("a single operating point with nothing swept and no covariance: there is nothing to "
                        "draw; sweep a [model] parameter (a list or a range)")
    name = _preferred(variables, lambda dims: bool(_swept(dims, sizes)))
    axes = _swept(variables[name], sizes) if name is not None else []
    if len(axes) == 2 and min(sizes[d] for d in axes) > SMALL and not set(axes) & set(STRING_DIMS):
        return {"kind": "map", "variable": name}
    return {"kind": "lines"}


def resolve_spec(spec: Mapping, sizes: Mapping[str, int], variables: Mapping[str, Sequence[str]],
                 quadratures: Sequence[str] = QUADRATURES, default: Mapping | None = None) -> dict:
    """Complete ``spec`` (a ``[plot]`` table, possibly empty) with the defaults for this output and check it.

    ``sizes``: dimension → number of values; ``variables``: data variable → its dimensions. Works from a
    Dataset (``plot.plot_dataset``) or from a scenario before the run (``check_plot``). Returns a new dict
    with every key the drawer uses, including ``hue``/``panels``: the dimensions that get one line or one
    panel per value, so that every point of the output is shown. ``default``: the run kind's own figure (its
    ``default_figure``), used where ``spec`` gives no kind. Raises PlotError saying why not.
    """
    given = dict(spec)
    spec = dict(spec)
    if "kind" not in spec:
        spec = {**default_spec(sizes, variables, default), **spec}
    kind = spec["kind"]
    if kind not in PLOT_KINDS:
        raise PlotError(f"plot.kind must be one of {PLOT_KINDS}, got {kind!r}")
    check_kind_keys("plot", given, PlotError, kind=kind)  # a key this kind of figure would ignore
    if "title" in spec and not isinstance(spec["title"], str):
        raise PlotError(f"plot.title must be a string, got {spec['title']!r}")
    if "panel_titles" in spec:
        spec["panel_titles"] = _names(spec, "panel_titles")
    if kind == "traces":  # the one kind that names quadratures: the system's (the resonator's by default)
        return _resolve_traces(spec, sizes, variables, tuple(quadratures))
    return {"lines": _resolve_lines, "map": _resolve_map, "estimate": _resolve_estimate,
            "matrix": _resolve_matrix, "spectra": _resolve_spectra}[kind](spec, sizes, variables)


def _need(name: str, variables: Mapping, what: str) -> Sequence[str]:
    if name not in variables:
        raise PlotError(f"{what} {name!r}, which is not in this output; it has {sorted(variables)}")
    return variables[name]


def _count(dims: Sequence[str], sizes: Mapping[str, int]) -> int:
    return math.prod(sizes.get(d, 1) for d in dims)


def _panels(dims: Sequence[str], used: Sequence[str], sizes: Mapping[str, int], kind: str) -> list[str]:
    panels = [d for d in dims if d not in used and sizes.get(d, 1) > 1]
    if _count(panels, sizes) > MAX_PANELS:
        raise PlotError(f"plot: kind = {kind!r} would need {_count(panels, sizes)} panels (one per value of "
                        f"{panels}), more than {MAX_PANELS}; select fewer points")
    return panels


def _not_a_curve(y: str, dims: Sequence[str]) -> str:
    """Why ``y`` (over these dimensions) is not drawn as lines, and what draws it."""
    if set(MATRIX_DIMS) <= set(dims):
        return f"plot.y = {y!r} is a matrix over (row, col) (its dimensions: {list(dims)}): use kind = 'matrix'"
    inner = [d for d in dims if d in ("trajectory", "time", "quadrature")]
    hint = "use kind = 'traces'" if y == "trace" else "no kind draws it; choose another variable"
    return f"plot.y = {y!r} is over {tuple(inner)} (its dimensions: {list(dims)}), not a curve: {hint}"


def _lines_y(spec, sizes, variables) -> list[str]:
    if "y" in spec:
        ys = _names(spec, "y")
    else:
        y = _preferred(variables, lambda dims: bool(_swept(dims, sizes)) or any(d in sizes for d in dims))
        if y is None:
            raise PlotError(f"plot: no variable of this output can be drawn as lines; it has {sorted(variables)}")
        ys = [y]
    for y in ys:
        dims = _need(y, variables, "plot.y names")
        if "row" in dims or "quadrature" in dims:
            raise PlotError(_not_a_curve(y, dims))
    return ys


def _lines_x(spec, sizes, first: Sequence[str], placed: Sequence[str]) -> str:
    if "x" in spec:
        return _dim(spec, "x")
    x = _axis_dim([d for d in _swept(first, sizes) if d not in placed] or
                  [d for d in first if d not in ("branch", *placed)], sizes)
    if x is None:
        taken = [d for d in first if d in placed]
        if taken:
            raise PlotError(f"plot: hue/panel take every dimension of the variable drawn ({taken}); leave one "
                            "for the x axis")
        raise PlotError("plot: the variable drawn has no dimension to draw it over; it is a single value")
    return x


def _resolve_lines(spec, sizes, variables):
    ys = _lines_y(spec, sizes, variables)
    panel = _dim(spec, "panel") if "panel" in spec else None
    hue = _names(spec, "hue") if "hue" in spec else []
    placed = [*hue, *([panel] if panel else [])]
    x = _lines_x(spec, sizes, variables[ys[0]], placed)
    if x in placed:
        raise PlotError(f"plot: {x!r} is given to x and to {'panel' if x == panel else 'hue'}; a dimension goes on "
                        "one of them")
    for key, names in (("x", [x]), ("hue", hue), ("panel", [panel] if panel else [])):
        for name in names:
            if name not in sizes:
                raise PlotError(f"plot.{key} = {name!r} is not a dimension of this output; it has "
                                f"{sorted(d for d in sizes if d != 'branch')}")
    used = {x, "branch", *placed}
    extra = [d for y in ys for d in variables[y] if d not in used and sizes.get(d, 1) > 1]
    hue = hue + list(dict.fromkeys(extra))  # every point shown: unplaced dimensions become hues
    for y in ys:
        missing = [d for d in [x, *hue, *([panel] if panel else [])] if d not in variables[y]]
        if missing:
            raise PlotError(f"plot: {y!r} does not vary over {missing} (its dimensions: "
                            f"{list(variables[y])}); leave them out of x/hue/panel or draw another variable")
    if _count(hue, sizes) > MAX_LINES:
        raise PlotError(f"plot: {_count(hue, sizes)} lines per panel (one per value of {hue}) is more than "
                        f"{MAX_LINES}; give plot.panel, or kind = 'map'")
    n_panels = len(ys) * (sizes[panel] if panel else 1)
    if n_panels > MAX_PANELS:
        raise PlotError(f"plot: {n_panels} panels is more than {MAX_PANELS}")
    if len(spec.get("panel_titles", ())) > n_panels:  # fewer: the first panels get them
        raise PlotError(f"plot.panel_titles gives {len(spec['panel_titles'])} titles for {n_panels} panel(s)")
    return {**spec, "x": x, "y": ys, "hue": hue, "panel": panel}


def _resolve_map(spec, sizes, variables):
    def two_axes(dims):
        return len([d for d in _swept(dims, sizes) if d not in STRING_DIMS]) >= 2

    name = _name(spec, "variable") if "variable" in spec else _preferred(variables, two_axes)
    if name is None:
        raise PlotError("plot: kind = 'map' needs a variable over two swept parameters; this output has none")
    dims = _need(name, variables, "plot.variable names")
    numeric = [d for d in _swept(dims, sizes) if d not in STRING_DIMS]
    y_given = _dim(spec, "y") if "y" in spec else None
    x = _dim(spec, "x") if "x" in spec else _axis_dim([d for d in numeric if d != y_given], sizes)
    y = y_given if y_given is not None else next((d for d in numeric if d != x), None)
    for key, d in (("x", x), ("y", y)):
        if d is None or d not in dims or d in STRING_DIMS:
            raise PlotError(f"plot.{key} = {d!r}: a map needs two numeric dimensions of {name!r}; it has "
                            f"{[d for d in dims if d != 'branch']}")
    if x == y:
        raise PlotError(f"plot.x and plot.y are both {x!r}")
    return {**spec, "x": x, "y": y, "variable": name, "panels": _panels(dims, (x, y, "branch"), sizes, "map")}


def _resolve_estimate(spec, sizes, variables):
    name = _name(spec, "variable") if "variable" in spec else "logneg"
    for suffix in ("_sim", "_sim_err"):
        _need(f"{name}{suffix}", variables, "kind = 'estimate' needs the time-domain variable")
    dims = variables[f"{name}_sim"]
    x = _dim(spec, "x") if "x" in spec else (
        "time" if "time" in dims else "dt" if "dt" in dims else _axis_dim(_swept(dims, sizes), sizes))
    if x is None or x not in dims:
        raise PlotError(f"plot.x = {x!r} is not a dimension of {name + '_sim'!r} (its dimensions: {list(dims)}); "
                        "an estimate is drawn over 'time', 'dt' or a swept parameter")
    return {**spec, "x": x, "variable": name, "panels": _panels(dims, (x,), sizes, "estimate")}


def _resolve_matrix(spec, sizes, variables):
    name = _name(spec, "variable") if "variable" in spec else next(
        (v for v in ("difference_z", "zscore", "cov") if v in variables), None)
    if name is None:
        raise PlotError(f"plot: kind = 'matrix' needs a (row, col) variable; this output has {sorted(variables)}")
    dims = _need(name, variables, "plot.variable names")
    if "row" not in dims or "col" not in dims:
        raise PlotError(f"plot.variable = {name!r} is not a matrix over (row, col); its dimensions: {list(dims)}")
    return {**spec, "variable": name, "panels": _panels(dims, MATRIX_DIMS, sizes, "matrix")}


def _resolve_traces(spec, sizes, variables, quadratures):
    dims = _need("trace", variables, "kind = 'traces' needs the recorded variable")
    # default: the x quadratures of the first and the last mode (the resonator's xU and q)
    quads = _names(spec, "y") if "y" in spec else list(dict.fromkeys([quadratures[0], quadratures[-2]]))
    bad = [q for q in quads if q not in quadratures]
    if bad or not quads:
        raise PlotError(f"plot.y: unknown quadrature(s) {bad}; allowed: {list(quadratures)}")
    panels = _panels(dims, ("trajectory", "time", "quadrature"), sizes, "traces")
    if _count(panels, sizes) * len(quads) > MAX_PANELS:
        raise PlotError(f"plot: kind = 'traces' would need more than {MAX_PANELS} panels")
    return {**spec, "y": quads, "panels": panels}


def _resolve_spectra(spec, sizes, variables):
    for name in ("spectrum_welch", "spectrum_welch_err", "spectrum_analytic"):
        _need(name, variables, "kind = 'spectra' needs the variable")
    extra = [d for v in ("spectrum_welch", "filtered_logneg") if v in variables
             for d in variables[v] if d not in ("omega", "bandwidth") and sizes.get(d, 1) > 1]
    if extra:
        raise PlotError(f"plot: kind = 'spectra' draws a single operating point; this output varies over {extra}")
    return dict(spec)


# The outline of a run before it runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutline:
    """What a run will write, as far as its figure needs to know before the run.

    kind: the catalogue's set of the run's own variables (``catalogue.OUTPUT_SETS``: 'sweep' a chain's
    steady state, 'seam_sweep' the per-point one; 'simulate': a [simulate] table, the steady state's
    variables beside; 'drive', 'wigner', 'detect': that single-point table; a plug-in run kind's own).
    sizes: the dimensions the run adds beside the swept parameters, with their sizes (``time``: snapshots or
    trace records, ``dt``: a time-step study, ``trajectory``: recorded traces, ``bandwidth``: filtered
    modes, ``row``/``col``: the system's 2N). transient: the ensemble estimates are recorded over time
    (snapshots). absent: the set's variables this run's system does not write. steady: the set of the steady
    state beside an ensemble ('sweep' or 'seam_sweep'). quadratures: the system's.
    """

    kind: str = "sweep"
    sizes: Mapping[str, int] = field(default_factory=dict)
    transient: bool = False
    absent: tuple[str, ...] = ()  # variables of the kind this run does not write (another system's)
    steady: str = "sweep"
    quadratures: tuple[str, ...] = QUADRATURES
    extra: tuple[str, ...] = ()  # the system's own variables beside its steady state's set (a plug-in's)
    figure: Callable | None = None  # (sizes, variables) → the run kind's default figure (its default_figure)
    with_steady: bool = False  # the run writes its steady set's variables beside its own (a conditional run)


# Variables written over fewer than all the swept parameters ("..." in the catalogue; see their meaning there).
REDUCED = {"logneg_max": ("detuning",), "revival": ("detuning",), "sagnac_shift": ("detuning", "direction")}
FIXED_SIZES = {"branch": 1, "row": 6, "col": 6, "quadrature": len(QUADRATURES)}
UNKNOWN_SIZE = 2  # a dimension whose size is not known before the run (e.g. omega): more than one value
PAIR_ESTIMATES = ("logneg_sim", "logneg_sim_err", "logneg_ref")  # over ``pair`` when the run's sizes have one


def unwritable(run: RunOutline, swept: Mapping[str, int]) -> dict[str, str]:
    """variable → why this run cannot write it, for the variables of its kind that it cannot: an [output]
    list naming one is refused (``check_output``), and the default selection leaves them out."""
    why = {}
    if run.kind == "simulate":  # its sweep has no revival; snapshots or not; traces only when recorded
        for name in ("logneg_max", "revival"):
            why[name] = "the maximum over a steady-state sweep's detuning, which a [simulate] run does not make"
        if run.transient:
            why["zscore_max_continuous"] = ("a steady-state estimate's z-score; this run records snapshots "
                                            "(save_times or save_every)")
        else:
            why["cov_moment"] = "the moment solution V(t) of a transient; give save_times or save_every"
        if "trajectory" not in run.sizes:
            why.update(dict.fromkeys(RECORDED, "recorded only with [simulate] traces >= 1"))
    elif run.kind == "sweep" and "detuning" not in swept:
        for name in ("logneg_max", "revival"):
            why[name] = "the maximum over detuning; give detuning as a list or range"
    return why


def check_output(variables: Sequence[str] | None, why: Mapping[str, str]) -> None:
    """An [output] variable this run cannot write (``why``: variable → what it needs, ``RunKind.unwritable``)
    is refused (ScenarioError naming it and what it needs)."""
    for name in variables or ():
        if name in why:
            raise ScenarioError(f"output.variables: {name!r} cannot be written by this run: {why[name]}")


def _written(run: RunOutline, swept: Mapping[str, int], variables: Sequence[str] | None) -> dict[str, str]:
    """variable → the run kind of the catalogue whose dimensions it has, for every variable the run writes."""
    kinds = (run.steady, run.kind) if run.kind == "simulate" or run.with_steady else (run.kind,)
    written = {n: k for k in kinds for n in variables_of(k)}
    written.update(dict.fromkeys(run.extra, run.steady))
    drop = set(run.absent)
    if run.kind == "simulate":
        drop |= set(unwritable(run, swept))
    elif variables is None:
        drop |= set(variables_of(run.kind)) - set(default_variables(run.kind, swept=bool(swept)))
        if swept.get("detuning", 1) < 2:
            drop |= {"logneg_max", "revival"}  # made when detuning is swept (or when asked for)
    return {n: k for n, k in written.items() if n not in drop and (variables is None or n in variables)}


def _dims_of(name: str, kind: str, swept: Sequence[str], run: RunOutline) -> tuple[str, ...]:
    """The dimensions of ``name`` in this run: the catalogue's, ``...`` expanded to the swept parameters."""
    dims: list[str] = []
    for d in dims_in(name, kind):
        if d == SWEPT:
            dims += [s for s in swept if s not in REDUCED.get(name, ())]
        elif d != "time" or kind != "simulate" or run.transient or name in RECORDED:
            dims.append(d)
    if kind == "simulate" and "dt" in run.sizes:  # a time-step study: one run per dt
        dims.insert(0, "dt")
    if "pair" in run.sizes and name in PAIR_ESTIMATES:  # another system's ensemble: E_N of every pair
        dims.append("pair")
    return tuple(dims)


def outline(params: Mapping, variables: Sequence[str] | None = None, run: RunOutline | None = None
            ) -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
    """(dimension sizes, data variable → dimensions) of the output a run will write, from the catalogue.

    params: the [model] values (a list: a swept parameter); variables: the [output] selection (None: all);
    run: what else the run does (None: a steady-state sweep). What ``resolve_spec`` needs before the run.
    """
    run = run or RunOutline()
    swept = {k: len(v) for k, v in params.items() if isinstance(v, list)}
    out = {name: _dims_of(name, kind, list(swept), run) for name, kind in _written(run, swept, variables).items()}
    known = {**FIXED_SIZES, **swept, **run.sizes}
    used = dict.fromkeys(d for dims in out.values() for d in dims)
    return {d: known.get(d, UNKNOWN_SIZE) for d in used}, out


def check_plot(plot: Mapping, params: Mapping, variables: Sequence[str] | None, *,
               run: RunOutline | None = None) -> None:
    """Validate [plot] against the run it will draw, so that a bad figure spec fails before any work.

    The defaults and the checks are ``resolve_spec``'s, applied to the ``outline`` of the run's output
    (``run``: None for a steady-state sweep; ``scenario.Scenario.run_outline`` for a scenario's run).
    Raises ScenarioError saying why the figure cannot be drawn.
    """
    run = run or RunOutline()
    sizes, written = outline(params, variables, run)
    try:
        resolve_spec(plot, sizes, written, run.quadratures, run.figure(sizes, written) if run.figure else None)
    except PlotError as exc:
        raise ScenarioError(str(exc)) from exc
