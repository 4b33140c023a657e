"""CF-1.8 outputs: compliance-checker on the output of every shipped scenario, the catalogue labels every
variable and coordinate, the time rule (seconds + scaled time + omega_ref), the round trip except history."""

import json
import re

import netCDF4
import numpy as np
import pytest
import xarray as xr
from conftest import SCENARIO_FILES, assert_identical_output

import sde_com
from sde_com.physics.system import get_system
from sde_com.results.catalogue import (
    COORDINATES,
    ENTRIES,
    OUTPUT_SETS,
    VARIABLES,
    apply_catalogue,
    software_versions,
)
from sde_com.results.io import read_dataset, write_dataset
from sde_com.runs.kinds import RUN_KINDS, output_reference_markdown

compliance_runner = pytest.importorskip("compliance_checker.runner")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the checker's own ioos_sos notice

HIGH, MEDIUM = 3, 2
ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def cf_findings(path) -> tuple[dict[int, list[str]], dict]:
    """(failed messages by weight, checker exceptions) of compliance-checker cf:1.8 on ``path``."""
    suite = compliance_runner.CheckSuite()
    suite.load_all_available_checkers()
    ds = suite.load_dataset(str(path))
    try:
        groups, errors = suite.run_all(ds, ["cf:1.8"], [], [])["cf:1.8"]
    finally:
        ds.close()
    failed: dict[int, list[str]] = {}
    for result in groups:
        value = result.value
        if value is False or (isinstance(value, tuple) and value[0] < value[1]):  # scored or pass/fail
            failed.setdefault(result.weight, []).extend(result.msgs or [result.name])
    return failed, errors


def assert_cf_clean(path) -> None:
    failed, errors = cf_findings(path)
    assert not errors, f"compliance-checker exceptions: {sorted(errors)}"
    for weight in (HIGH, MEDIUM):
        bad = sorted(set(failed.get(weight, [])))
        assert not bad, f"weight {weight}: {bad}"


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_scenario_output_is_cf(name, scenario_outputs):
    _, path = scenario_outputs[name]
    assert_cf_clean(path)


BUILT = {"matrix": sde_com.MatrixSystem, "hamiltonian": sde_com.HamiltonianSystem}  # systems a file defines


def system_of(definition: dict):
    """The system a file's ``system_definition`` regenerates: a registered one by name, or one it defines."""
    built = BUILT.get(definition["name"])
    return get_system(definition["name"]) if built is None else built(
        **{k: v for k, v in definition.items() if k != "name"})


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_scenario_output_is_labelled_from_the_catalogue(name, scenario_outputs):
    in_memory, path = scenario_outputs[name]
    with netCDF4.Dataset(path) as nc:
        assert nc.Conventions == "CF-1.8"
        assert nc.title and nc.source.startswith("sde_com ")
        # every file names its system and how to make it again, and cites what that system cites
        definition = json.loads(nc.system_definition)
        assert definition["name"] == nc.system
        if nc.system not in BUILT:  # a registered system (else one given by its matrices or its Hamiltonian)
            assert nc.references == get_system(nc.system).references
        assert nc.software_versions == software_versions() and "numba " in nc.software_versions
        assert re.fullmatch(ISO_UTC + r" sde_com\.write_dataset", nc.history)
        for var in nc.variables.values():
            assert var.dtype != np.int64, var.name
            if var.dtype != "S1":  # numeric: units and long_name (strings: long_name only)
                assert "units" in var.ncattrs(), var.name
            assert var.long_name, var.name
            if var.name in nc.dimensions:
                assert "_FillValue" not in var.ncattrs(), var.name
    back = read_dataset(path)
    system = system_of(json.loads(back.attrs["system_definition"]))
    entries = system.dimension * (system.dimension + 1) // 2
    for name_, var in back.variables.items():
        if not system.catalogue_words and name_ in back.coords and name_ not in COORDINATES:
            continue  # a parameter of another system: labelled from its Key (test_single_cavity)
        entry = COORDINATES[name_] if name_ in back.coords else VARIABLES[name_]
        # other systems' files are relabelled for their modes (label_for_system); a detector's view names its pair
        if system.catalogue_words and name_ not in ("filtered_logneg", "logneg_intracavity"):
            assert var.attrs["long_name"] == entry.long_name.replace(ENTRIES, str(entries))
        assert var.attrs.get("units") == entry.units
    assert_identical_output(back, in_memory)


def test_time_axis_in_seconds_and_scaled(scenario_outputs):
    with_time = 0
    for name in SCENARIO_FILES:
        ds, _ = scenario_outputs[name]
        if "time" not in ds.dims:
            continue
        with_time += 1
        assert ds["time"].attrs["units"] == "s" and "standard_name" not in ds["time"].attrs, name
        assert ds["time_scaled"].dims == ("time",) and ds["time_scaled"].attrs["units"] == "1", name
        assert ds.attrs["omega_ref_units"] == "rad s-1", name
        np.testing.assert_allclose(ds["time"].values * ds.attrs["omega_ref"], ds["time_scaled"].values,
                                   rtol=1e-12, err_msg=name)
    assert with_time >= 4  # transients, traces, drives


def test_dt_study_coordinate_in_units_of_one_over_omega_m(scenario_outputs):
    ds, _ = scenario_outputs["sim_dt_study"]
    assert ds["dt"].attrs["units"] == "1" and "1/ω_m" in ds["dt"].attrs["long_name"]


def test_strings_and_flags_in_the_file(scenario_outputs, tmp_path):
    from sde_com import sweep

    ds = sweep(detuning=[0.0, 1.0], direction=["cw", "ccw"])
    path = write_dataset(ds, tmp_path / "s.nc")
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_chartostring(False)
        assert nc["direction"].dimensions == ("direction", "direction_strlen")
        assert nc["stable"].dtype == np.int8 and nc["stable"].flag_meanings == "unstable stable"
        assert nc["branch"].dtype == np.int32 and nc["n_branches"].dtype == np.int32
    back = read_dataset(path)
    assert back["direction"].dtype.kind == "U" and back["stable"].dtype == bool
    assert back.sel(direction="ccw")["logneg"].shape == ds.sel(direction="ccw")["logneg"].shape
    assert_identical_output(back, ds)
    assert_cf_clean(path)


def test_streamed_traces_file_is_cf(tmp_path, scenario_outputs):
    """The engine's path (traces streamed unit by unit), as the CLI writes it, with its history line."""
    from sde_com.runs.engine import execute
    from sde_com.runs.scenario import load_scenario

    out = tmp_path / "traces.nc"
    execute(load_scenario(SCENARIO_FILES["sim_traces"]), out, quiet=True, history="sde-com run x.toml -o y.nc")
    assert_cf_clean(out)
    back = read_dataset(out)
    assert re.fullmatch(ISO_UTC + " sde-com run x.toml -o y.nc", back.attrs["history"])
    assert back["trace"].attrs["long_name"] == VARIABLES["trace"].long_name
    assert "time_scaled" in back.coords
    assert_identical_output(back, scenario_outputs["sim_traces"][0])


def test_cli_records_its_command_line(tmp_path):
    from sde_com.cli import main

    out = tmp_path / "fig3cd.nc"
    assert main(["run", str(SCENARIO_FILES["fig3cd"]), "-o", str(out), "--quiet"]) == 0
    history = read_dataset(out).attrs["history"]
    assert re.fullmatch(ISO_UTC + r" sde-com run \S+fig3cd\.toml -o \S+fig3cd\.nc --quiet", history), history


def test_catalogue_is_complete_and_rejects_unknown_names():
    for kind, (_, names) in OUTPUT_SETS.items():
        assert set(names) <= set(VARIABLES), kind
    assert set().union(*(names for _, names in OUTPUT_SETS.values())) == set(VARIABLES)
    reference = output_reference_markdown()  # every set under a run kind that writes it
    assert all(any(s in k.output_sets for k in RUN_KINDS.values()) for s in OUTPUT_SETS)
    for name in [*VARIABLES, *COORDINATES]:
        assert f"`{name}`" in reference, name
    for entry in [*VARIABLES.values(), *COORDINATES.values()]:
        assert entry.long_name and entry.meaning, entry.name
        assert entry.units is None or " " not in entry.units.replace("rad s-1", ""), entry.units
    with pytest.raises(KeyError, match="not_in_catalogue"):
        apply_catalogue(xr.Dataset({"not_in_catalogue": ((), 1.0)}))
