"""Scenario files: every one parses; the committed data/ regenerate identically; provenance attrs; the netCDF
round trip; and what a scenario means (defaults, ranges, lists, output selection)."""

import itertools
import json
from dataclasses import fields

import numpy as np
import pytest
import xarray as xr
from conftest import ROOT, RUN_DEPENDENT_ATTRS, SCENARIO_FILES, assert_identical_output, run_text

import sde_com
from sde_com.resonator import Device
from sde_com.results.io import read_dataset, write_dataset
from sde_com.results.sweep import SWEEP_PARAMETERS, sweep
from sde_com.runs.scenario import load_scenario, parse_scenario, run_scenario
from sde_com.simulation.estimators import N_JACKKNIFE_GROUPS

WITH_DATA = [name for name in SCENARIO_FILES if (ROOT / "data" / f"{name}.nc").exists()]

# Committed outputs known not to match their scenario file (regenerate with
# `sde-com run scenarios/NAME.toml -o data/NAME.nc --plot --force`, then drop the entry).
STALE: dict[str, str] = {}


def test_scenarios_exist():
    assert SCENARIO_FILES, "no scenarios/*.toml found"


def test_every_scenario_has_committed_outputs():
    for name in SCENARIO_FILES:
        assert (ROOT / "data" / f"{name}.nc").exists(), name
        assert (ROOT / "data" / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_scenario_parses(name):
    path = SCENARIO_FILES[name]
    scenario = load_scenario(path)
    assert scenario.name == path.name
    assert scenario.text == path.read_text(encoding="utf-8")
    assert scenario.title
    assert set(scenario.parameters) <= set(scenario.system.parameters)


@pytest.fixture(scope="module")
def regenerated(scenario_outputs):
    """name -> (Dataset from run_scenario, the same written with write_dataset and read back); cached, and the
    run shared with the CF tests' (``conftest.scenario_outputs``: each scenario runs once per test process)."""
    cache = {}

    def get(name):
        if name not in cache:
            ds, path = scenario_outputs[name]
            cache[name] = ds, read_dataset(path)
        return cache[name]

    return get


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=STALE[n], strict=True)) if n in STALE else n for n in WITH_DATA
])
def test_committed_data_regenerate(name, regenerated):
    _, fresh = regenerated(name)
    committed = read_dataset(ROOT / "data" / f"{name}.nc")
    assert_same_within_rounding(fresh, committed)


# The committed data/ against a regeneration. Bitwise identity is promised, and tested elsewhere, for one
# machine: across threads, chunk sizes, Dask workers and resume. Across CPUs, values that pass through
# BLAS/LAPACK (expm, Cholesky, eigenvalue and Lyapunov solves) or Numba's CPU-specific code generation may
# differ in the last bits (seen: 1.2e-16 absolute, 3e-15 relative, on an AMD EPYC with OpenBLAS). Those
# steps are backward stable: normwise relative error ≲ n·ε·κ(A) with n ≤ 6, ε = 2.2e-16 and the condition
# number of A/ω_ref at the shipped operating points κ ≤ 200 (122 measured, the single cavity at Vitali's
# point; 31 for the resonator; test_condition_of_shipped_points), i.e. ≲ 2.6e-13. A time-stepping estimate
# can amplify an error in the step map F by up to 1/(1 − ρ(F)²) ≈ 1/(2·|Re λ|_min·dt) ≈ 2.4e3 (slowest decay
# 1/12 ω_m, finest shipped step 0.0025/ω_m): ≲ 6e-10.
# RTOL_NORMWISE = 1e-9 sits above that and 1e5× below the smallest statistical error in the files
# (~1e-4 relative), so a real change in physics or statistics still fails. It is normwise, against each
# variable's largest magnitude: an entry near zero (a z-score, a vanishing covariance element) inherits an
# absolute error, not a relative one.
RTOL_NORMWISE = 1e-9


def assert_same_within_rounding(fresh: xr.Dataset, committed: xr.Dataset) -> None:
    """Same variables, coordinates (exactly: they are inputs) and attributes (less the run's provenance);
    float data equal to the rounding tolerance of each variable (``rounding_tolerance``), NaN and inf in the
    same places; everything else exactly."""
    assert set(fresh.data_vars) == set(committed.data_vars)
    coords = [ds.coords.to_dataset() for ds in (fresh, committed)]
    for c in coords:
        c.attrs = {}  # compared below, less history
    xr.testing.assert_identical(*coords)
    assert _attrs(fresh) == _attrs(committed)
    for name, var in committed.data_vars.items():
        new = fresh[name]
        assert new.dims == var.dims and _attrs(new) == _attrs(var), name
        a, b = np.asarray(new.values), np.asarray(var.values)
        if b.dtype.kind != "f":
            np.testing.assert_array_equal(a, b, err_msg=name)
            continue
        finite = np.isfinite(b)
        np.testing.assert_array_equal(np.isfinite(a), finite, err_msg=f"{name}: NaN/inf placement")
        np.testing.assert_array_equal(a[~finite], b[~finite], err_msg=f"{name}: inf signs")
        if finite.any():
            atol = np.broadcast_to(rounding_tolerance(committed, name), b.shape)[finite]
            np.testing.assert_array_less(np.abs(a[finite] - b[finite]), atol * (1 + 1e-12) + 1e-300,
                                         err_msg=name)


# Where a variable is computed from others by a step that turns their absolute rounding into its own, its
# tolerance is that absolute error, not RTOL_NORMWISE of its own (smaller) scale:
# - an error bar X_err (jackknife over G groups: err² = (G−1)/G Σ (θᵢ − θ̄)²) moves by at most 2√(G−1) times
#   the absolute rounding of its leave-one-out values, which is that of X itself: RTOL_NORMWISE·max|X|;
# - a difference of two variables (the truncated-Wigner check's cov_tw − cov_lin, entries ~1 that agree to
#   1e-7) carries their absolute rounding, RTOL_NORMWISE·max(|cov_tw|, |cov_lin|); its z-score
#   difference_z = difference / (its error bar) that rounding over each entry's error bar.
# Everywhere else a variable's own largest magnitude sets the scale (the comment on RTOL_NORMWISE).
DIFFERENCE_OF = {"difference": ("cov_tw", "cov_lin")}


def rounding_tolerance(ds: xr.Dataset, name: str):
    """The absolute tolerance of variable ``name`` of ``ds`` across CPUs (a scalar, or per entry)."""
    def scale(var):
        values = np.asarray(ds[var].values, dtype=float)
        finite = values[np.isfinite(values)]
        return np.abs(finite).max() if finite.size else 0.0

    own = RTOL_NORMWISE * scale(name)
    if name.endswith("_err") and name[:-4] in ds:
        return max(own, 2 * np.sqrt(N_JACKKNIFE_GROUPS - 1) * RTOL_NORMWISE * scale(name[:-4]))
    if name in DIFFERENCE_OF:
        return max(own, RTOL_NORMWISE * max(scale(v) for v in DIFFERENCE_OF[name]))
    if name.endswith("_z") and name[:-2] in DIFFERENCE_OF:  # its error bar is difference / difference_z
        with np.errstate(divide="ignore", invalid="ignore"):
            per_err = np.abs(np.asarray(ds[name].values, dtype=float) / np.asarray(ds[name[:-2]].values))
        return np.maximum(own, rounding_tolerance(ds, name[:-2]) * np.nan_to_num(per_err))
    return own


# provenance of the run rather than of the result: when and by what command, and (another machine may have
# others) with which library versions
RUN_PROVENANCE = (*RUN_DEPENDENT_ATTRS, "software_versions")


def _attrs(obj) -> dict:
    """Attributes less the run's provenance, arrays as lists (so that == compares them)."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in obj.attrs.items()
            if k not in RUN_PROVENANCE}


def test_same_within_rounding_has_power():
    """The comparison accepts last-bit differences and refuses a change far below any statistical error."""
    ds = xr.Dataset({"x": ("i", np.array([0.5, 1e-20, np.nan, 2.0]))})
    nudged = ds.copy(deep=True)
    nudged["x"].values[[0, 1]] += 3e-16
    assert_same_within_rounding(nudged, ds)
    changed = ds.copy(deep=True)
    changed["x"].values[3] *= 1 + 1e-8
    with pytest.raises(AssertionError):
        assert_same_within_rounding(changed, ds)
    # an error bar takes its value's absolute rounding, and still refuses a change far below a statistical one
    bars = ds.assign(x_err=("i", np.array([0.01, 0.01, np.nan, 0.02])))
    nudged = bars.copy(deep=True)
    nudged["x_err"].values[0] += 2e-9  # 2e-7 relative: the rounding of x (2e-9 absolute) through a jackknife
    assert_same_within_rounding(nudged, bars)
    changed = bars.copy(deep=True)
    changed["x_err"].values[3] *= 1 + 1e-5
    with pytest.raises(AssertionError):
        assert_same_within_rounding(changed, bars)


def test_condition_of_shipped_points():
    """κ(A/ω_ref) ≤ 200 at the shipped stable operating points: the premise of RTOL_NORMWISE (every point of
    the smaller scenarios; an even sample of at most 2000 of the large maps)."""
    worst = 0.0
    for name in WITH_DATA:
        scenario = load_scenario(SCENARIO_FILES[name])
        grid = {k: (v if isinstance(v, list) else [v]) for k, v in scenario.parameters.items()}
        combos = list(itertools.product(*grid.values()))
        for combo in combos[::max(1, len(combos) // 2000)]:
            values = dict(zip(grid, combo, strict=True))
            system, rate = scenario.system, scenario.system.reference_rate(values)  # every system one way
            if "periodic" in system.capabilities:
                break  # no constant A: the periodic state's own conditioning is the test below
            worst = max([worst, *(np.linalg.cond(b.drift / rate) for b in system.branches(values)
                                  if system.stability(b, values).stable)])
    assert worst <= 200, worst


def test_conditioning_of_shipped_periodic_states():
    """1/(1 − |μ|²) ≤ 1000 at the shipped stable periodic points (|μ| the largest Floquet multiplier): the premise
    of RTOL_NORMWISE for a periodic state. Eq. (P3) amplifies an error in the maps by at most that much, and the
    maps carry the rounding of ~10³ Magnus steps (≲ 10³ × 2.2e-16, normwise): ≲ 2.2e-10."""
    shipped = 0
    for name in WITH_DATA:
        with xr.open_dataset(ROOT / "data" / f"{name}.nc") as ds:
            if "floquet_multiplier" not in ds:
                continue
            shipped += 1
            largest = ds.floquet_multiplier.max("multiplier").where(ds.stable_periodic.astype(bool))
            assert float((1 / (1 - largest ** 2)).max()) <= 1000, name
    assert shipped >= 1


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_provenance(name, regenerated):
    in_memory, from_file = regenerated(name)
    for ds in (in_memory, from_file):
        assert ds.attrs["source"] == f"sde_com {sde_com.__version__}"
        assert ds.attrs["scenario"] == SCENARIO_FILES[name].read_text(encoding="utf-8")
        assert ds.attrs["scenario_name"] == f"{name}.toml"
        parameters = json.loads(ds.attrs["parameters"])
        system = load_scenario(SCENARIO_FILES[name]).system
        names = SWEEP_PARAMETERS if system is None else system.parameters
        assert set(names) <= set(parameters)
        for dim in ds.dims:
            if dim in names:
                assert parameters[dim] == ds[dim].values.tolist(), dim
        described = [*ds.data_vars, *(c for c in ds.coords if c in names)]
        for var in described:
            assert "units" in ds[var].attrs or ds[var].dtype.kind == "U", var  # string labels have no units
            assert ds[var].attrs.get("long_name"), var


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_scenario_figure_draws(name, regenerated, tmp_path):
    """The [plot] spec of every scenario fits its own dataset (plot values are not checked at parse time)."""
    pytest.importorskip("matplotlib")
    from sde_com.plot import plot_dataset

    _, ds = regenerated(name)
    png = plot_dataset(ds, tmp_path / f"{name}.png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# Round trip ----------------------------------------------------------------------------------------

ROUND_TRIPS = {
    "full": dict(detuning=[0.0, 0.5, 1.0, 2.0], direction=["ccw", "cw"], J=[0.0, 7.6e7]),
    "direction-first": dict(direction=["cw", "ccw"], Omega=[8e3, 0.0], store_cov=False),
    "scalar": dict(detuning=1.0, direction="cw"),
    "range": dict(temperature=np.linspace(0.01, 1.0, 5), detuning=np.linspace(-1.0, 2.0, 7), store_cov=False),
}


@pytest.mark.parametrize("kwargs", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip(tmp_path, kwargs):
    ds = sweep(**kwargs)
    back = read_dataset(write_dataset(ds, tmp_path / "sweep.nc"))
    assert_identical_output(back, ds)
    for name, var in ds.variables.items():
        assert back[name].dtype == var.dtype, name
    assert back["stable"].dtype == bool
    for name in ("direction", "row", "col"):
        if name in ds.coords:
            assert back[name].dtype.kind == "U", name
            assert back[name].values.tolist() == ds[name].values.tolist()
    if "direction" not in ds.dims:
        assert back.attrs["direction"] == kwargs.get("direction", "ccw")


def test_round_trip_of_scenario_dataset(tmp_path):
    text = "[model]\ndetuning = { start = -1.0, stop = 2.0, num = 4 }\ndirection = [\"cw\", \"ccw\"]\n"
    ds = run_scenario(parse_scenario(text, "inline.toml"))
    back = read_dataset(write_dataset(ds, tmp_path / "s.nc"))
    assert_identical_output(back, ds)
    assert back["stable"].dtype == bool and back["direction"].values.tolist() == ["cw", "ccw"]


# Semantics -----------------------------------------------------------------------------------------


def test_omitted_keys_take_paper_values():
    ds = run_text("[model]\ndetuning = [0.0, 1.0]\nJ = 1e7\n")
    paper = Device()
    parameters = json.loads(ds.attrs["parameters"])
    for f in fields(Device):
        expected = 1e7 if f.name == "J" else getattr(paper, f.name)
        assert ds.attrs[f.name] == expected, f.name
        assert parameters[f.name] == expected, f.name
    assert ds.attrs["direction"] == parameters["direction"] == "ccw"
    assert "detuning" not in ds.attrs and parameters["detuning"] == [0.0, 1.0]


def test_empty_scenario_is_the_paper_point():
    ds = run_text("")
    paper = Device()
    for f in fields(Device):
        assert ds.attrs[f.name] == getattr(paper, f.name), f.name
    assert ds.attrs["detuning"] == 1.0 and ds.attrs["direction"] == "ccw"
    assert set(ds.dims) <= {"branch", "row", "col"}


def test_omitted_key_gives_same_numbers_as_explicit_paper_value():
    implicit = run_text("[model]\ndetuning = [0.0, 1.0]\n")
    explicit = run_text(f"[model]\ndetuning = [0.0, 1.0]\nmass = {Device().mass!r}\n"
                        f"temperature = {Device().temperature!r}\ndirection = \"ccw\"\n")
    xr.testing.assert_identical(implicit.drop_attrs(), explicit.drop_attrs())


@pytest.mark.parametrize("start, stop, num", [
    (-1.0, 2.5, 351),  # fig2a
    (-3.0, 4.5, 301),  # fig3f
    (0.0, 30e3, 61),
    (0.01, 1.5, 60),
    (2.0, -1.0, 7),  # descending
    (0.5, 0.5, 1),  # a single point
    (1.0, 9.0, 1),  # num = 1 keeps the start
    (0, 3, 4),  # TOML integers
])
def test_range_is_linspace(start, stop, num):
    ds = run_text(f"[model]\ndetuning = {{ start = {start!r}, stop = {stop!r}, num = {num} }}\n"
                  "[output]\nvariables = [\"logneg\"]\n")
    expected = np.linspace(start, stop, num)
    assert ds["detuning"].dtype == np.float64
    np.testing.assert_array_equal(ds["detuning"].values, expected)
    assert json.loads(ds.attrs["parameters"])["detuning"] == expected.tolist()


def test_range_in_scenario_files_is_linspace(regenerated):
    import tomllib

    for name, path in SCENARIO_FILES.items():
        model = tomllib.loads(path.read_text(encoding="utf-8"))["model"]
        ds, _ = regenerated(name)
        parameters = json.loads(ds.attrs["parameters"])
        for key, value in model.items():
            if isinstance(value, dict):
                expected = np.linspace(value["start"], value["stop"], value["num"])
                assert parameters[key] == expected.tolist(), f"{name}.{key}"
                if key in ds.dims:  # reduced dimensions (detuning under revival) live in the attrs only
                    np.testing.assert_array_equal(ds[key].values, expected, err_msg=f"{name}.{key}")


def test_lists_are_dimensions_in_the_order_given():
    ds = run_text("[model]\nJ = [7.6e7, 0.0, 1e7]\ndirection = [\"cw\", \"ccw\"]\nOmega = [8e3, 0.0]\n"
                  "detuning = 1.0\n")
    assert ds["logneg"].dims == ("J", "direction", "Omega", "branch")
    assert ds["J"].values.tolist() == [7.6e7, 0.0, 1e7]
    assert ds["direction"].values.tolist() == ["cw", "ccw"]
    assert ds["Omega"].values.tolist() == [8e3, 0.0]
    assert "detuning" not in ds.dims and ds.attrs["detuning"] == 1.0
    # a one-element list is still a dimension; a scalar is not
    ds = run_text("[model]\nJ = [0.0]\npower = 0.01\n")
    assert ds.sizes["J"] == 1 and "power" not in ds.dims and ds.attrs["power"] == 0.01


def test_list_order_does_not_change_values():
    forward = run_text("[model]\ndetuning = [0.0, 1.0]\ndirection = [\"ccw\", \"cw\"]\n"
                       "[output]\nvariables = [\"logneg\", \"stable\"]\n")
    backward = run_text("[model]\ndirection = [\"cw\", \"ccw\"]\ndetuning = [1.0, 0.0]\n"
                        "[output]\nvariables = [\"logneg\", \"stable\"]\n")
    xr.testing.assert_equal(forward.drop_attrs(), backward.drop_attrs().transpose(*forward["logneg"].dims)
                            .sel(detuning=[0.0, 1.0], direction=["ccw", "cw"]))


def test_a_sweep_writes_cov_only_when_asked_unless_nothing_is_swept():
    # V at every point would be most of a big sweep's file and run time: on request (catalogue.ON_REQUEST)
    swept = run_text("[model]\ndetuning = [0.0, 1.0]\n")
    assert "cov" not in swept and "row" not in swept.coords and "logneg_max" in swept
    single = run_text("[model]\ndetuning = 0.75\n")
    assert single["cov"].shape == (1, 6, 6)


@pytest.mark.parametrize("variables", [
    ["logneg"],
    ["logneg", "stable"],
    ["stable", "photons", "n_branches"],
    ["cov"],
    ["logneg_max", "revival"],
    ["sagnac_shift"],
])
def test_output_variables_keeps_only_those(variables):
    from sde_com.results.catalogue import variables_of

    text = "[model]\ndetuning = [0.0, 1.0]\nOmega = [0.0, 8e3]\n"
    full = run_text(text + f"[output]\nvariables = {json.dumps(list(variables_of('sweep')))}\n")
    ds = run_text(text + f"[output]\nvariables = {json.dumps(variables)}\n")
    assert set(ds.data_vars) == set(variables)
    assert ("row" in ds.coords) == ("cov" in variables)
    assert ("col" in ds.coords) == ("cov" in variables)
    for name in variables:
        xr.testing.assert_identical(ds[name], full[name])


def test_the_plan_carries_one_grid_of_its_own_system():
    """The [model] values carry their grid (``sweep.Grid``), fixed once built, of the scenario's own system:
    a scenario given another system gets the grid of that one."""
    from dataclasses import replace

    from sde_com.results.sweep import Grid

    scenario = parse_scenario("[model]\ndetuning = [0.5, 1.0]\n")
    assert isinstance(scenario.parameters, Grid) and scenario.parameters.grid[2] == (2,)
    with pytest.raises(TypeError, match="fixed"):
        scenario.parameters["detuning"] = [1.0, 2.0, 3.0]
    other = replace(scenario, system=sde_com.get_system("single_cavity"))
    assert other.parameters.system.name == "single_cavity" and other.parameters.grid[2] == (2,)


def test_a_kinds_default_figure_is_checked_as_the_plot_draws_it():
    """A [drive] run whose [output] leaves out the envelope is still drawn as its estimates over time: the check
    before the run and `sde-com plot` after it apply one rule (``runs.kinds.default_figure``)."""
    text = SCENARIO_FILES["drive_switch_on"].read_text(encoding="utf-8")
    text = text.split("[plot]")[0] + '[output]\nvariables = ["logneg_sim", "logneg_sim_err", "logneg_ref"]\n' \
        '[plot]\ntitle = "x"\n'
    scenario = parse_scenario(text)  # refused before: "a single operating point ... nothing to draw"
    from sde_com.runs.plotspec import outline

    sizes, written = outline(scenario.parameters, scenario.variables, scenario.run_outline)
    assert scenario.run_outline.figure(sizes, written)["kind"] == "estimate"
