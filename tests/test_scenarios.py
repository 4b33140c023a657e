"""Scenario files: every one parses; the committed data/ regenerate identically; provenance attrs; the netCDF
round trip; and what a scenario means (defaults, ranges, lists, output selection)."""

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sde_com
from sde_com import Device
from sde_com.io import read_dataset, write_dataset
from sde_com.scenario import load_scenario, parse_scenario, run_scenario
from sde_com.sweep import SWEEP_PARAMETERS, sweep

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {p.stem: p for p in sorted((ROOT / "scenarios").glob("*.toml"))}
WITH_DATA = [name for name in SCENARIOS if (ROOT / "data" / f"{name}.nc").exists()]

# Committed outputs known not to match their scenario file (regenerate with
# `sde-com run scenarios/NAME.toml -o data/NAME.nc --plot --force`, then drop the entry).
STALE: dict[str, str] = {}


def test_scenarios_exist():
    assert SCENARIOS, "no scenarios/*.toml found"


def test_every_scenario_has_committed_outputs():
    for name in SCENARIOS:
        assert (ROOT / "data" / f"{name}.nc").exists(), name
        assert (ROOT / "data" / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_parses(name):
    path = SCENARIOS[name]
    scenario = load_scenario(path)
    assert scenario.name == path.name
    assert scenario.text == path.read_text(encoding="utf-8")
    assert scenario.title
    assert set(scenario.parameters) <= set(SWEEP_PARAMETERS)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """name -> (Dataset from run_scenario, the same written with write_dataset and read back); cached."""
    cache = {}
    folder = tmp_path_factory.mktemp("regenerated")

    def get(name):
        if name not in cache:
            ds = run_scenario(load_scenario(SCENARIOS[name]))
            cache[name] = ds, read_dataset(write_dataset(ds, folder / f"{name}.nc"))
        return cache[name]

    return get


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=STALE[n], strict=True)) if n in STALE else n for n in WITH_DATA
])
def test_committed_data_regenerate_identically(name, regenerated):
    _, fresh = regenerated(name)
    committed = read_dataset(ROOT / "data" / f"{name}.nc")
    xr.testing.assert_identical(fresh, committed)


@pytest.mark.parametrize("name", SCENARIOS)
def test_provenance(name, regenerated):
    in_memory, from_file = regenerated(name)
    for ds in (in_memory, from_file):
        assert ds.attrs["sde_com_version"] == sde_com.__version__
        assert ds.attrs["scenario"] == SCENARIOS[name].read_text(encoding="utf-8")
        assert ds.attrs["scenario_name"] == f"{name}.toml"
        parameters = json.loads(ds.attrs["parameters"])
        assert set(SWEEP_PARAMETERS) <= set(parameters)
        for dim in ds.dims:
            if dim in SWEEP_PARAMETERS:
                assert parameters[dim] == ds[dim].values.tolist(), dim
        described = [*ds.data_vars, *(c for c in ds.coords if c in SWEEP_PARAMETERS)]
        for var in described:
            assert "units" in ds[var].attrs, var
            assert ds[var].attrs.get("long_name"), var


@pytest.mark.parametrize("name", SCENARIOS)
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
    xr.testing.assert_identical(back, ds)
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
    xr.testing.assert_identical(back, ds)
    assert back["stable"].dtype == bool and back["direction"].values.tolist() == ["cw", "ccw"]


# Semantics -----------------------------------------------------------------------------------------


def run_text(text):
    return run_scenario(parse_scenario(text, "inline.toml"))


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

    for name, path in SCENARIOS.items():
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


@pytest.mark.parametrize("variables", [
    ["logneg"],
    ["logneg", "stable"],
    ["stable", "photons", "n_branches"],
    ["cov"],
    ["logneg_max", "revival"],
    ["sagnac_shift"],
])
def test_output_variables_keeps_only_those(variables):
    text = "[model]\ndetuning = [0.0, 1.0]\nOmega = [0.0, 8e3]\n"
    full = run_text(text)
    ds = run_text(text + f"[output]\nvariables = {json.dumps(variables)}\n")
    assert set(ds.data_vars) == set(variables)
    assert ("row" in ds.coords) == ("cov" in variables)
    assert ("col" in ds.coords) == ("cov" in variables)
    for name in variables:
        xr.testing.assert_identical(ds[name], full[name])
