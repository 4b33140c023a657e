"""The registries are open: a run kind with its own table and output variable, and a system with an output
variable of its own, registered from here without editing sde_com/ (docs/architecture.md, "Recipes").

The toy run kind ``[purity]`` writes the purity μ = 1/(2^N √det V) of the steady state V of Eq. (11) at every
point and branch of any system's grid (vacuum variance 1/2, so the vacuum has μ = 1 and a thermal mode of
occupation n has μ = 1/(2n + 1)). The toy system is a damped oscillator in a thermal bath whose mean-field
"amplitude" (the drive over the damping, an output variable the catalogue did not have) it writes beside its
steady state.
"""

import math
from types import MappingProxyType

import numpy as np
import pytest
import xarray as xr
from test_cf import assert_cf_clean

import sde_com
from sde_com.physics.system import _REGISTRY, Branch, LinearSystem
from sde_com.results import catalogue
from sde_com.results.catalogue import SWEPT, OutputVariable, register_output_set, register_variable
from sde_com.runs import kinds, schema
from sde_com.runs import scenario as scenarios
from sde_com.runs.kinds import RunKind, register_run_kind
from sde_com.runs.plotspec import RunOutline
from sde_com.spec import Key, make_table


def _purity(V: np.ndarray) -> float:
    """μ = 1/(2^N √det V) of a 2N×2N covariance with vacuum variance 1/2 (Tr ρ² of a Gaussian state)."""
    return 1.0 / (2 ** (V.shape[0] // 2) * math.sqrt(np.linalg.det(V)))


class PurityKind(RunKind):
    """[purity]: the purity of every steady state of the grid (a toy run kind, with a table of its own)."""

    name = table = "purity"
    heading = "Purity of the steady state (`[purity]`, a test's run kind)"
    output_sets = ("purity",)

    def variables(self, system):
        return ("steady_purity",)

    def outline(self, scenario):
        return RunOutline("purity", {"branch": 1}, quadratures=tuple(scenario.system.quadratures))

    def run(self, scenario, trace_sink=None):
        steady = sde_com.sweep(system=scenario.system, **scenario.parameters)
        cov = steady["cov"]
        purity = xr.apply_ufunc(lambda v: _purity(v) if np.isfinite(v).all() else np.nan, cov,
                                input_core_dims=[["row", "col"]], vectorize=True)
        if scenario.tables["purity"].get("entropy", False):  # the linear entropy 1 − μ instead
            purity = 1.0 - purity
        ds = xr.Dataset({"steady_purity": purity}).drop_vars(["row", "col"], errors="ignore")
        return catalogue.apply_catalogue(ds, title="purity", system=scenario.system)


class ThermalOscillator(LinearSystem):
    """x' = ω p − (γ/2) x, p' = −ω x − (γ/2) p with noise γ(n + ½) on each quadrature: a mode damped at the
    energy rate γ into a bath of occupation n (V = (n + ½) I). Its mean field, an amplitude ε/γ, is written as
    the output variable ``toy_amplitude``."""

    name = "toy_thermal_oscillator"
    modes = ("a",)
    quadratures = ("x", "p")
    mean_field_variables = ("toy_amplitude",)
    parameters = MappingProxyType({k.name: k for k in (
        Key("omega", "number", "frequency ω", "rad/s", 1.0, minimum=0.0, forms=("list",)),
        Key("gamma", "number", "energy decay rate γ", "rad/s", 0.2, minimum=0.0, exclusive_minimum=True,
            forms=("list",)),
        Key("n", "number", "bath occupation n", "1", 0.5, minimum=0.0, forms=("list",)),
        Key("drive", "number", "drive ε", "rad/s", 1.0, forms=("list",)),
    )})

    def reference_rate(self, params):
        return self.resolve(params)["gamma"]

    def branches(self, params):
        p = self.resolve(params)
        w, g = p["omega"], p["gamma"]
        A = np.array([[-g / 2, w], [-w, -g / 2]])
        D = g * (p["n"] + 0.5) * np.eye(2)
        return [Branch(0, {"amplitude": p["drive"] / g}, A, D)]

    def mean_field_outputs(self, mean_field, params):
        return {"toy_amplitude": mean_field["amplitude"]}


@pytest.fixture
def plugins(monkeypatch):
    """The toy run kind, its table, its output variable and set, and the toy system, registered as a plug-in
    would (the public registration functions); the registries are restored afterwards."""
    monkeypatch.setattr(kinds, "RUN_KINDS", dict(kinds.RUN_KINDS))
    monkeypatch.setattr(scenarios, "RUN_KINDS", kinds.RUN_KINDS)
    for name in ("VARIABLES", "OUTPUT_SETS"):
        monkeypatch.setattr(catalogue, name, dict(getattr(catalogue, name)))
    monkeypatch.setattr(schema, "_TABLES", dict(schema._TABLES))
    monkeypatch.setattr(schema, "SCHEMA", MappingProxyType(schema._TABLES))
    monkeypatch.setattr(sde_com.physics.system, "_REGISTRY", dict(_REGISTRY))

    register_variable(OutputVariable("steady_purity", (SWEPT, "branch"), "1", "purity Tr ρ² of the steady state",
                                     "1/(2^N √det V), Eq. (11)'s V; a test's variable."))
    register_variable(OutputVariable("toy_amplitude", (SWEPT, "branch"), "1", "mean-field amplitude ε/γ",
                                     "A test system's mean-field value."))
    register_output_set("purity", "Purity (a test's run kind)", ("steady_purity",))
    schema.register_table(make_table("purity", "The purity of the steady state (a test's run kind).",
                                     Key("entropy", "boolean", "write the linear entropy 1 − μ", default=False)))
    register_run_kind(PurityKind())
    sde_com.register_system(ThermalOscillator)


SWEEP = '[system]\nname = "toy_thermal_oscillator"\n[model]\nn = [0.0, 0.5, 1.0, 2.0, 4.0]\n'


def test_a_run_kind_from_outside_validates_plans_runs_writes_cf_and_plots(plugins, tmp_path):
    from sde_com.plot import plot_dataset

    scenario = sde_com.parse_scenario(SWEEP + "[purity]\n[plot]\nkind = \"lines\"\n")
    assert scenario.kind.name == "purity" and scenario.tables["purity"] == {}
    with pytest.raises(schema.ScenarioError, match=r"purity\.entropy"):
        sde_com.parse_scenario(SWEEP + "[purity]\nentropy = 3\n")  # the schema checks its keys
    out = tmp_path / "purity.nc"
    sde_com.run_scenario_to_file(scenario, out, quiet=True)
    ds = sde_com.read_dataset(out)
    n = ds["n"].values
    # closed form: a mode in its thermal state has μ = 1/(2n + 1); the Lyapunov solve and det agree to rounding
    np.testing.assert_allclose(ds["steady_purity"].isel(branch=0).values, 1.0 / (2 * n + 1), rtol=1e-12)
    assert ds["steady_purity"].attrs["long_name"] == "purity Tr ρ² of the steady state"
    assert ds.attrs["system"] == "toy_thermal_oscillator"
    assert_cf_clean(out)
    figure = tmp_path / "purity.png"
    plot_dataset(ds, figure)
    assert figure.read_bytes().startswith(b"\x89PNG")


def test_a_system_from_outside_writes_its_own_output_variable(plugins, tmp_path):
    out = tmp_path / "toy.nc"
    scenario = sde_com.parse_scenario(SWEEP.replace("n = [", "drive = [1.0, 3.0]\nn = [") +
                                      '[output]\nvariables = ["toy_amplitude", "cov"]\n')
    sde_com.run_scenario_to_file(scenario, out, quiet=True)
    ds = sde_com.read_dataset(out)
    gamma = ThermalOscillator.parameters["gamma"].default
    np.testing.assert_array_equal(ds["toy_amplitude"].isel(branch=0).values,
                                  np.broadcast_to(np.array([1.0, 3.0])[:, None] / gamma, (2, 5)))
    assert ds["toy_amplitude"].attrs["long_name"] == "mean-field amplitude ε/γ"
    for V in ds["cov"].isel(branch=0).transpose("n", ...).values.swapaxes(0, 1):  # each drive
        # V = (n + ½) I, the thermal state of the bath (Lyapunov solve: rounding, 1e-15 relative)
        np.testing.assert_allclose(V, (ds["n"].values[:, None, None] + 0.5) * np.eye(2), rtol=1e-12, atol=1e-15)
    assert_cf_clean(out)
