"""Figures: every shipped output and any steady-state sweep over one or two parameters plots, through
``sde-com plot`` and ``sde-com run --plot``; every point is shown; no text leaves the canvas and legends sit
outside the axes; a figure that cannot be drawn exits 2 with a message and writes no PNG."""

import ast
import json
import re

import numpy as np
import pytest
import xarray as xr

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from conftest import PNG_MAGIC, ROOT, SCENARIO_FILES, run_cli, run_text  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from sde_com.cli import EXIT_BAD_INPUT, main  # noqa: E402
from sde_com.plot import PlotError, dataset_outline, dataset_spec, draw_dataset, resolve_spec  # noqa: E402
from sde_com.results.io import from_disk_layout, read_dataset, write_dataset  # noqa: E402
from sde_com.runs import plotspec  # noqa: E402
from sde_com.runs.plotspec import outline  # noqa: E402
from sde_com.runs.scenario import ScenarioError, check_plot, load_scenario, parse_scenario, run_scenario  # noqa: E402


def assert_nothing_clipped(fig) -> None:
    """Every visible text (titles, labels, ticks, legend) inside the canvas; legends outside every axes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    ticks = {id(label) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for label in (tick.label1, tick.label2)}

    def inside(box, what):
        assert (box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1 and box.y0 >= canvas.y0 - 1
                and box.y1 <= canvas.y1 + 1), f"{what} at {box} leaves the canvas {canvas}"

    # titles, suptitle, axis labels, legend entries, numbers written in panels (tick labels: below)
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in ticks]
    assert texts
    for t in texts:
        inside(t.get_window_extent(renderer), f"text {t.get_text()!r}")
    for ax in fig.axes:  # everything each panel draws, its tick labels included
        inside(ax.get_tightbbox(renderer), f"panel {ax.get_label() or ax.get_title()!r}")
    plot_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    for legend in fig.findobj(Legend):
        box = legend.get_window_extent(renderer)
        assert box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1 and box.y0 >= canvas.y0 - 1
        for ax in plot_axes:
            assert not box.overlaps(ax.bbox), "a legend covers a panel"
    if fig._suptitle is not None:
        title = fig._suptitle.get_window_extent(renderer)
        for ax in plot_axes:
            assert not title.overlaps(ax.bbox), "the title runs into a panel"
        for legend in fig.findobj(Legend):
            assert not title.overlaps(legend.get_window_extent(renderer)), "the title runs into the legend"


def drawn(ds):
    fig = draw_dataset(ds)
    assert_nothing_clipped(fig)
    return fig


def panels(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def run_with_plot(tmp_path, text):
    """``sde-com run SCEN -o out.nc --plot`` in-process → (exit status, out.nc, out.png)."""
    out = tmp_path / "out.nc"
    return run_cli(tmp_path, text, out, "--plot"), out, out.with_suffix(".png")


# Shipped outputs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_committed_output_plots_via_cli_with_nothing_clipped(name, tmp_path, capsys):
    nc = ROOT / "data" / f"{name}.nc"
    png = tmp_path / f"{name}.png"
    assert main(["plot", str(nc), "-o", str(png)]) == 0, capsys.readouterr().err
    assert png.read_bytes().startswith(PNG_MAGIC)
    with xr.open_dataset(nc) as ds:
        fig = drawn(ds)
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in panels(fig))
        plt.close(fig)


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_shipped_plot_spec_passes_check_plot(name):
    scenario = load_scenario(SCENARIO_FILES[name])
    check_plot(scenario.plot, scenario.parameters, scenario.variables, run=scenario.run_outline)
    if len(scenario.dimensions) <= 2:  # the default figure too
        check_plot({}, scenario.parameters, scenario.variables, run=scenario.run_outline)
    if scenario.kind.name == "sweep":  # the positional form: a steady-state sweep
        check_plot(scenario.plot, scenario.parameters, scenario.variables)


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_outline_before_the_run_is_the_written_output(name):
    """check_plot's outline (from the catalogue) has the variables, dimensions and sizes of the real file."""
    scenario = load_scenario(SCENARIO_FILES[name])
    sizes, variables = outline(scenario.parameters, scenario.variables, scenario.run_outline)
    with xr.open_dataset(ROOT / "data" / f"{name}.nc") as ds:
        real_sizes, real_variables = dataset_outline(from_disk_layout(ds))
    assert variables == real_variables
    assert {d: n for d, n in sizes.items() if d not in ("branch", "omega")} == {
        d: n for d, n in real_sizes.items() if d not in ("branch", "omega")}


def _imports_within_sde_com(module: str) -> set[str]:
    """The sde_com modules (dotted below the package) that ``module`` imports, directly or through others
    (read from the source; imports under ``if TYPE_CHECKING:`` never run, and do not count)."""
    seen, todo = set(), [module]
    while todo:
        tree = ast.parse((ROOT / "sde_com").joinpath(*todo.pop().split(".")).with_suffix(".py")
                         .read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                node.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sde_com."):
                name = node.module.removeprefix("sde_com.")
                if name not in seen and (ROOT / "sde_com").joinpath(*name.split(".")).with_suffix(".py").exists():
                    seen.add(name)
                    todo.append(name)
    return seen


def test_plotspec_is_below_scenario_and_plot():
    """The spec logic imports neither scenario nor plot, and they do not import each other (no cycle)."""
    assert not {"runs.scenario", "plot"} & _imports_within_sde_com("runs.plotspec")
    assert "runs.plotspec" in _imports_within_sde_com("runs.scenario")
    assert "runs.plotspec" in _imports_within_sde_com("plot")
    assert "plot" not in _imports_within_sde_com("runs.scenario")
    assert "runs.scenario" not in _imports_within_sde_com("plot")
    import sde_com.plot
    import sde_com.runs.scenario
    from sde_com.runs.schema import SCHEMA

    assert sde_com.plot.PlotError is plotspec.PlotError and issubclass(PlotError, ValueError)
    assert sde_com.plot.resolve_spec is plotspec.resolve_spec
    assert sde_com.runs.scenario.PLOT_KINDS is plotspec.PLOT_KINDS is SCHEMA["plot"].keys["kind"].choices


def test_every_plot_key_read_is_declared_in_the_schema():
    """The drawer reads no [plot] key that the schema refuses (omega_max once was read, never accepted)."""
    from sde_com.runs.schema import SCHEMA

    read = set()
    for module in ("plot.py", "runs/plotspec.py"):
        text = (ROOT / "sde_com" / module).read_text(encoding="utf-8")
        read |= set(re.findall(r"spec(?:\.get\(|\[)\"(\w+)\"", text))
        read |= set(re.findall(r"_(?:name|names|dim)\(spec, \"(\w+)\"\)", text))
    assert read
    resolved = {"panels"}  # added by resolve_spec
    assert read - resolved <= set(SCHEMA["plot"].keys), read - resolved - set(SCHEMA["plot"].keys)


# `run --plot` end to end on a steady-state and a time-domain scenario; every shipped scenario's run is tested by
# test_cf and test_scenarios (its output identical to the committed one), and every committed output's figure
# above, so running them all again here would test nothing new
@pytest.mark.parametrize("name", ["fig2a", "drive_switch_on"])
def test_shipped_scenario_runs_with_plot(name, tmp_path, capsys):
    status, out, png = run_with_plot(tmp_path, SCENARIO_FILES[name].read_text(encoding="utf-8"))
    assert status == 0, capsys.readouterr().err
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_plot_subcommand_reads_the_file_lazily(tmp_path, monkeypatch, capsys):
    """`sde-com plot` opens the file lazily (a trace file may not fit in memory): nothing loads it whole,
    and the string coordinates read lazily (object arrays) still label the figure."""
    import sde_com.results.io

    def refuse(*args, **kwargs):
        raise AssertionError("the whole dataset was loaded")

    monkeypatch.setattr(xr.Dataset, "load", refuse)
    monkeypatch.setattr(sde_com.results.io, "read_dataset", refuse)
    for name in ("sim_traces", "fig2a"):
        png = tmp_path / f"{name}.png"
        assert main(["plot", str(ROOT / "data" / f"{name}.nc"), "-o", str(png)]) == 0, capsys.readouterr().err
        assert png.read_bytes().startswith(PNG_MAGIC)
    bad = tmp_path / "bad.nc"
    bad.write_text("not a netCDF file\n")
    assert main(["plot", str(bad), "-o", str(tmp_path / "X.png")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: cannot read dataset") and "bad.nc" in err and "Traceback" not in err
    assert not (tmp_path / "X.png").exists()


def test_matrix_title_quotes_the_variable_shown():
    """The truncated-Wigner panel shows difference_z: its title quotes max |difference_z|, not zscore_max."""
    with xr.open_dataset(ROOT / "data" / "wigner_paper.nc") as ds:
        fig = drawn(ds)
        shown = float(np.abs(ds["difference_z"]).max())
        title = panels(fig)[0].get_title()
        plt.close(fig)
    assert f"{shown:.2f}" in title
    assert f"{float(ds['zscore_max']):.2f}" not in title


def test_long_title_is_wrapped_inside_the_canvas():
    ds = sweep_ds("detuning = [0.0, 0.5, 1.0]")
    ds.attrs["title"] = "A very long title " * 12
    fig = drawn(ds)
    assert "\n" in fig._suptitle.get_text()
    plt.close(fig)


# Steady-state sweeps without a [plot] table ----------------------------------------------------------------


def sweep_ds(model: str, plot: str = "") -> xr.Dataset:
    return run_text(f'title = "test sweep"\n[model]\n{model}\n{plot}')


def test_1d_sweep_over_omega(tmp_path, capsys):
    status, out, png = run_with_plot(tmp_path, "[model]\nOmega = { start = 0.0, stop = 2e4, num = 5 }\n")
    assert status == 0, capsys.readouterr().err
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert main(["plot", str(out), "-o", str(tmp_path / "X.png")]) == 0
    fig = drawn(read_dataset(out))
    (ax,) = panels(fig)
    assert ax.get_xlabel() == "Ω (10³ rad s⁻¹)" and ax.get_ylabel() == "E_N"
    assert len(ax.get_lines()) == 1
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0, 5, 10, 15, 20])
    plt.close(fig)


def test_1d_sweep_over_temperature(tmp_path, capsys):
    status, out, png = run_with_plot(tmp_path, "[model]\ntemperature = [0.0, 0.1, 0.5, 1.0]\n")
    assert status == 0, capsys.readouterr().err
    fig = drawn(read_dataset(out))
    (ax,) = panels(fig)
    assert ax.get_xlabel() == "T (K)"
    plt.close(fig)


def test_2d_sweep_over_j_and_power_small_is_lines_with_hue(tmp_path, capsys):
    status, out, png = run_with_plot(tmp_path, "[model]\nJ = [0.0, 3e7, 7.6e7]\npower = [0.005, 0.01, 0.015, 0.02]\n")
    assert status == 0, capsys.readouterr().err
    ds = read_dataset(out)
    spec = dataset_spec(ds)
    assert spec["kind"] == "lines" and spec["x"] == "power" and spec["hue"] == ["J"]
    fig = drawn(ds)
    (ax,) = panels(fig)
    assert len(ax.get_lines()) == 3  # one per J
    assert ax.get_xlabel() == "P (mW)"
    assert len(fig.legends[0].get_texts()) == 3
    plt.close(fig)


def test_2d_sweep_over_j_and_power_large_is_a_map(tmp_path, capsys):
    status, out, png = run_with_plot(tmp_path, "[model]\nJ = { start = 0.0, stop = 1e8, num = 8 }\n"
                                         "power = { start = 0.005, stop = 0.02, num = 7 }\n")
    assert status == 0, capsys.readouterr().err
    ds = read_dataset(out)
    spec = dataset_spec(ds)
    assert spec["kind"] == "map" and {spec["x"], spec["y"]} == {"J", "power"}
    fig = drawn(ds)
    (ax,) = panels(fig)
    assert "rad s⁻¹" in ax.get_xlabel() + ax.get_ylabel() and "mW" in ax.get_xlabel() + ax.get_ylabel()
    plt.close(fig)


@pytest.mark.parametrize("model", [
    "detuning = [0.0, 0.75, 1.5]",
    'direction = ["ccw", "cw"]',
    'Omega = [0.0, 8e3]\ndirection = ["ccw", "cw"]',
    "quality_factor = [1e7, 3.2e7]\nmass = [1e-11, 2e-11, 3e-11]",
    "wavelength = [1.5e-6, 1.55e-6]\nradius = { start = 2e-5, stop = 4e-5, num = 8 }",
    "omega_m = { start = 5e7, stop = 7e7, num = 7 }\ngamma_m = { start = 500.0, stop = 2000.0, num = 7 }",
    "refractive_index = [1.4, 1.44, 1.48]\ndn_dlambda = [0.0, 1e3]",
    "temperature = 0.2",
])
def test_any_sweep_over_one_or_two_parameters_plots(model):
    fig = drawn(sweep_ds(model))
    for ax in panels(fig):
        assert ax.get_xlabel() and ax.get_ylabel()
    plt.close(fig)


@pytest.mark.parametrize("model, kind, x, hue", [
    ("detuning = [0.0, 0.4, 0.75, 1.1, 1.5]\nOmega = { start = 0.0, stop = 2e4, num = 20 }", "lines", "Omega",
     ["detuning"]),
    ("detuning = [0.0, 0.75, 1.5]\ntemperature = { start = 0.0, stop = 1.0, num = 40 }", "lines", "temperature",
     ["detuning"]),
    ("detuning = { start = 0.0, stop = 1.5, num = 20 }\nOmega = [0.0, 5e3, 1e4, 1.5e4, 2e4]", "lines", "detuning",
     ["Omega"]),
    ('direction = ["ccw", "cw"]\nOmega = { start = 0.0, stop = 2e4, num = 40 }', "lines", "Omega", ["direction"]),
    ("Omega = [0.0, 1e4]\npower = [0.005, 0.01, 0.015, 0.02, 0.025, 0.03]", "lines", "power", ["Omega"]),
    ("detuning = { start = 0.0, stop = 1.5, num = 30 }\nOmega = { start = 0.0, stop = 2e4, num = 30 }", "map",
     "detuning", None),
])
def test_two_parameter_sweep_plots_by_default_with_the_smaller_dimension_as_hue(tmp_path, capsys, model, kind, x,
                                                                              hue):
    """Lines over the larger dimension, one line per value of the smaller (≤ 6 values), else a map; never a
    default that the checks then refuse (detuning × 20 Ω values once asked for 20 lines per panel)."""
    text = f"[model]\n{model}\n"
    scenario = parse_scenario(text)
    check_plot({}, scenario.parameters, scenario.variables, run=scenario.run_outline)
    ds = run_scenario(scenario)
    spec = dataset_spec(ds)
    assert spec["kind"] == kind and spec["x"] == x
    if kind == "lines":
        assert spec["hue"] == hue
        fig = drawn(ds)
        (ax,) = panels(fig)
        n_hue = ds.sizes[hue[0]]
        assert len(ax.get_lines()) == n_hue and len(ax.get_lines()[0].get_xdata()) == ds.sizes[x]
    else:
        assert {spec["x"], spec["y"]} == {"detuning", "Omega"}
        fig = drawn(ds)
    plt.close(fig)
    if "num = 40" in model:  # the same through `sde-com run --plot`
        status, out, png = run_with_plot(tmp_path, text)
        assert status == 0, capsys.readouterr().err
        assert png.read_bytes().startswith(PNG_MAGIC)


def test_default_figure_of_every_one_or_two_parameter_sweep_is_accepted():
    """Every pair of [model] keys at any sizes: the default spec passes its own checks (before the run)."""
    from itertools import combinations

    from sde_com.runs.schema import SCHEMA

    keys = list(SCHEMA["model"].keys)
    for n in (1, 2):
        for names in combinations(keys, n):
            for sizes in ((2, 2), (5, 20), (20, 5), (3, 40), (6, 7), (7, 7), (30, 30)):
                params = {k: ["ccw", "cw"] if k == "direction" else [float(i) for i in range(s)]
                          for k, s in zip(names, sizes[:n], strict=True)}
                spec = resolve_spec({}, *outline(params))
                assert spec["kind"] in ("lines", "map"), (params, spec)
                check_plot({}, params, None)


def test_default_map_falls_back_to_lines_when_no_variable_spans_both_axes():
    text = ("[model]\ndetuning = { start = 0.0, stop = 1.5, num = 8 }\nOmega = { start = 0.0, stop = 2e4, num = 8 }\n"
            "[output]\nvariables = [\"logneg_max\", \"revival\"]\n")
    scenario = parse_scenario(text)
    spec = resolve_spec({}, *outline(scenario.parameters, scenario.variables))
    assert spec["kind"] == "lines" and spec["x"] == "Omega" and spec["y"] == ["logneg_max"]
    check_plot({}, scenario.parameters, scenario.variables)


def test_every_point_of_unplaced_dimensions_is_drawn():
    """A [plot] that names only x: the other swept dimension becomes the hue, not its first value."""
    ds = sweep_ds('detuning = [0.0, 0.75, 1.5]\nOmega = [0.0, 8e3, 2e4]',
                  '[plot]\nkind = "lines"\nx = "detuning"\ny = ["logneg"]')
    fig = drawn(ds)
    (ax,) = panels(fig)
    assert len(ax.get_lines()) == 3
    plt.close(fig)


def test_time_scaled_axis_when_present():
    with xr.open_dataset(ROOT / "data" / "sim_transient.nc") as ds:
        ds = ds.load()
    ds = ds.assign_coords(time_scaled=("time", ds["time"].values * 6.3e7))
    fig = drawn(ds)
    ax = panels(fig)[0]
    assert ax.get_xlabel() == "ω_m t"
    assert ax.get_lines()[0].get_xdata()[-1] == pytest.approx(120.0, rel=1e-6)
    plt.close(fig)


def test_lines_accept_time_scaled_like_estimate():
    """x = "time_scaled" (ω_ref·t, as the file indexes time) is the time dimension for lines and estimate alike."""
    with xr.open_dataset(ROOT / "data" / "sim_transient.nc") as ds:
        ds = from_disk_layout(ds.load())
    for kind, extra in (("lines", {"y": ["logneg_sim"]}), ("estimate", {})):
        spec = {"kind": kind, "x": "time_scaled", **extra}
        assert resolve_spec(spec, *dataset_outline(ds))["x"] == "time"
        ds.attrs["plot"] = json.dumps(spec)
        fig = drawn(ds)
        assert panels(fig)[0].get_xlabel() == "ω_m t"
        plt.close(fig)
    scenario = load_scenario(SCENARIO_FILES["sim_transient"])
    check_plot({"kind": "lines", "x": "time_scaled", "y": ["logneg_sim"]}, scenario.parameters,
               scenario.variables, run=scenario.run_outline)


# Time-domain outputs ---------------------------------------------------------------------------------------

SIM_POINT = """[model]
detuning = 0.75

[simulate]
method = "exact"
dt = 0.5
burn_in = 10.0
duration = 40.0
trajectories = 8
seed = 1
initial = "steady"
"""


def test_single_point_simulation_plots_by_default(tmp_path, capsys):
    status, out, png = run_with_plot(tmp_path, SIM_POINT)
    assert status == 0, capsys.readouterr().err
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert main(["plot", str(out), "-o", str(tmp_path / "X.png")]) == 0
    ds = read_dataset(out)
    assert dataset_spec(ds)["kind"] == "matrix"
    plt.close(drawn(ds))


@pytest.mark.parametrize("name", ["sim_transient", "sim_dt_study", "sim_crosscheck_exact", "drive_switch_on",
                                  "sim_traces", "wigner_paper", "detect_output"])
def test_time_domain_files_plot_without_their_spec(name, tmp_path):
    with xr.open_dataset(ROOT / "data" / f"{name}.nc") as ds:
        ds = ds.load()
    del ds.attrs["plot"]
    plt.close(drawn(ds))
    write_dataset(ds, tmp_path / "x.nc")
    assert main(["plot", str(tmp_path / "x.nc"), "-o", str(tmp_path / "x.png")]) == 0


def points_along(ds: xr.Dataset, dim: str, values) -> xr.Dataset:
    """``ds`` repeated along a new swept dimension (the estimate shifted so that each point differs)."""
    parts = [ds.assign(logneg_sim=ds["logneg_sim"] + 0.01 * k) for k in range(len(values))]
    out = xr.concat(parts, dim=dim).assign_coords({dim: list(values)})
    out.attrs = ds.attrs
    return out


@pytest.mark.parametrize("name", ["sim_transient", "drive_switch_on", "sim_dt_study"])
def test_multi_point_estimate_shows_every_point(name):
    with xr.open_dataset(ROOT / "data" / f"{name}.nc") as ds:
        ds = ds.load()
    many = points_along(ds, "detuning", [0.5, 0.75, 1.0])
    fig = drawn(many)
    axes = panels(fig)
    assert len(axes) == 3
    firsts = []
    for ax, value in zip(axes, [0.5, 0.75, 1.0], strict=True):
        sim = [line for line in ax.get_lines() if line.get_label() == "simulated ± 1σ"]
        assert len(sim) == 1
        firsts.append(sim[0].get_ydata()[-1])
        assert f"{value:g}" in ax.get_title()
    assert len(set(firsts)) == 3  # each panel its own point
    plt.close(fig)


def test_multi_point_matrix_shows_every_point():
    with xr.open_dataset(ROOT / "data" / "sim_crosscheck_exact.nc") as ds:
        ds = ds.load()
    many = xr.concat([ds, ds], dim="direction").assign_coords(direction=["ccw", "cw"])
    many.attrs = ds.attrs
    fig = drawn(many)
    assert len(panels(fig)) == 2
    plt.close(fig)


# Figures that cannot be drawn: exit 2, a message, no PNG ---------------------------------------------------


def test_plot_of_three_swept_dimensions_without_spec_exits_2(tmp_path, capsys):
    ds = sweep_ds('detuning = [0.0, 1.0]\nOmega = [0.0, 8e3]\nJ = [0.0, 7.6e7]')
    nc = write_dataset(ds, tmp_path / "three.nc")
    assert main(["plot", str(nc), "-o", str(tmp_path / "X.png")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: ") and "Traceback" not in err
    assert "3 parameters" in err and "[plot]" in err
    assert not (tmp_path / "X.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.nc"]


def test_run_plot_of_three_swept_dimensions_fails_before_work(tmp_path, capsys):
    status, out, png = run_with_plot(tmp_path, '[model]\ndetuning = [0.0, 1.0]\nOmega = [0.0, 8e3]\nJ = [0.0, 7.6e7]\n')
    assert status == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "3 parameters" in err and "Traceback" not in err
    assert not out.exists() and not png.exists()


@pytest.mark.parametrize("plot, fragment", [
    ('kind = "map"\nx = "detuning"\ny = "Omega"\nvariable = "photons"', "'photons'"),
    ('kind = "lines"\nx = "temperature"', "'temperature'"),
    ('kind = "lines"\ny = ["cov"]', "matrix"),
    ('kind = "matrix"\nvariable = "logneg"', "'logneg'"),
    ('kind = "map"\nx = "detuning"\ny = "direction"', "'direction'"),
])
def test_run_plot_with_impossible_spec_fails_before_work(tmp_path, capsys, plot, fragment):
    text = ('[model]\ndetuning = [0.0, 1.0]\nOmega = [0.0, 8e3]\ndirection = ["ccw", "cw"]\n'
            '[output]\nvariables = ["logneg", "stable", "cov"]\n[plot]\n' + plot + "\n")
    status, out, png = run_with_plot(tmp_path, text)
    assert status == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert not out.exists() and not png.exists()


@pytest.mark.parametrize("model", ["detuning = [0.5, 1.0]", "detuning = 0.75"])
@pytest.mark.parametrize("plot, fragment", [
    ('kind = "estimate"', "logneg_sim"),
    ('kind = "traces"', "'trace'"),
    ('kind = "spectra"', "spectrum_welch"),
    ('kind = "matrix"\nvariable = "zscore"', "'zscore'"),
    ('kind = "lines"\nx = "time"', "'time'"),
])
def test_run_plot_of_time_domain_kind_without_simulate_fails_before_work(tmp_path, capsys, model, plot, fragment):
    """No [simulate]: a time-domain figure is refused when the scenario is read, before any work (no file)."""
    status, out, png = run_with_plot(tmp_path, f"[model]\n{model}\n[plot]\n{plot}\n")
    assert status == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: ") and fragment in err and "Traceback" not in err
    assert not out.exists() and not png.exists()
    with pytest.raises(ScenarioError, match=re.escape(fragment)):
        load_scenario(tmp_path / "scenario.toml")


@pytest.mark.parametrize("extra, plot, fragment", [
    ("", 'kind = "traces"', "'trace'"),  # no traces recorded
    ("", 'kind = "spectra"', "spectrum_welch"),  # no [detect]
    ("", 'kind = "estimate"\nx = "time"', "'time'"),  # a steady run: no snapshots
    ('[output]\nvariables = ["logneg", "cov"]\n', 'kind = "estimate"', "logneg_sim"),
    ("[wigner]\n", 'kind = "estimate"', "logneg_sim"),
])
def test_time_domain_spec_the_run_will_not_write_is_refused_before_work(tmp_path, capsys, extra, plot, fragment):
    status, out, png = run_with_plot(tmp_path, f"{SIM_POINT.replace('exact', 'em')}{extra}[plot]\n{plot}\n")
    assert status == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert not out.exists() and not png.exists()


def test_y_that_is_not_a_curve_names_its_real_dimensions():
    """y = ["trace"] is over (trajectory, time, quadrature), not "a matrix over (row, col)"."""
    with xr.open_dataset(ROOT / "data" / "sim_traces.nc") as ds:
        sizes, variables = dataset_outline(from_disk_layout(ds))
    with pytest.raises(PlotError) as drawn_error:
        resolve_spec({"kind": "lines", "y": ["trace"]}, sizes, variables)
    scenario = load_scenario(SCENARIO_FILES["sim_traces"])
    with pytest.raises(ScenarioError) as checked_error:
        check_plot({"kind": "lines", "y": ["trace"]}, scenario.parameters, scenario.variables,
                   run=scenario.run_outline)
    for message in (str(drawn_error.value), str(checked_error.value)):
        assert "(row, col)" not in message and "matrix" not in message
        assert "('trajectory', 'time', 'quadrature')" in message and "kind = 'traces'" in message
    with pytest.raises(PlotError, match=r"matrix over \(row, col\).*kind = 'matrix'"):
        resolve_spec({"kind": "lines", "y": ["cov"]}, sizes, variables)


@pytest.mark.parametrize("spec, fragment", [
    ({"kind": "lines", "x": "time"}, "'time'"),
    ({"kind": "estimate", "variable": "photons"}, "photons_sim"),
    ({"kind": "traces"}, "'trace'"),
    ({"kind": "bar"}, "plot.kind"),
    ({"kind": "matrix", "variable": "nope"}, "'nope'"),
])
def test_plot_subcommand_with_spec_the_file_lacks_exits_2(tmp_path, capsys, spec, fragment):
    ds = read_dataset(ROOT / "data" / "fig2bc.nc")
    ds.attrs["plot"] = json.dumps(spec)
    nc = write_dataset(ds, tmp_path / "bad.nc")
    assert main(["plot", str(nc), "-o", str(tmp_path / "X.png")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: ") and fragment in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nc"]
    with pytest.raises(PlotError):
        draw_dataset(ds)


# check_plot and plot.py agree (one home for the defaults) --------------------------------------------------

SIM_SMALL = """detuning = 0.75
[simulate]
method = "exact"
dt = 0.5
duration = 20.0
trajectories = 4
seed = 1
initial = "steady"
"""
AGREEMENT = [
    ("detuning = [0.0, 1.0]", {}),
    ("Omega = [0.0, 8e3, 2e4]\ndirection = [\"ccw\", \"cw\"]", {}),
    ("detuning = [0.0, 1.0]\nOmega = [0.0, 8e3]\nJ = [0.0, 7.6e7]", {}),
    ("detuning = [0.0, 1.0]\nOmega = [0.0, 8e3]\nJ = [0.0, 7.6e7]", {"kind": "lines", "hue": ["Omega"]}),
    ("detuning = [0.0, 1.0]\nOmega = [0.0, 8e3]", {"kind": "lines", "y": ["logneg_max"]}),
    ("detuning = [0.0, 1.0]\nOmega = [0.0, 8e3]", {"kind": "lines", "x": "Omega", "y": ["logneg_max"]}),
    ("detuning = [0.0, 1.0]\nOmega = [0.0, 8e3]", {"kind": "map"}),
    ("temperature = 0.1", {}),
    ("temperature = 0.1", {"kind": "lines"}),
    ("temperature = [0.1, 0.2]", {"kind": "matrix", "variable": "cov"}),
    ("detuning = [0.0, 0.4, 0.75, 1.1, 1.5]\nOmega = { start = 0.0, stop = 2e4, num = 20 }", {}),
    ("detuning = [0.0, 0.4, 0.75, 1.1, 1.5]\nOmega = { start = 0.0, stop = 2e4, num = 20 }", {"kind": "lines"}),
    ("detuning = [0.0, 0.75, 1.5]\nOmega = [0.0, 8e3]", {"kind": "estimate"}),
    (SIM_SMALL, {}),
    (SIM_SMALL, {"kind": "estimate"}),  # a steady single point: nothing to draw it over
    (SIM_SMALL, {"kind": "traces"}),
    (SIM_SMALL, {"kind": "matrix", "variable": "cov_sim"}),
    (SIM_SMALL + "save_every = 2.0\n", {}),
    (SIM_SMALL + "save_every = 2.0\n", {"kind": "lines", "x": "time_scaled", "y": ["logneg_sim", "logneg_ref"]}),
    (SIM_SMALL + "save_every = 2.0\ntraces = 2\n", {}),
    (SIM_SMALL + "save_every = 2.0\ntraces = 2\n", {"kind": "lines", "y": ["trace"]}),
    (SIM_SMALL.replace("dt = 0.5", "dt = [0.5, 0.25]"), {}),
    (SIM_SMALL.replace("dt = 0.5", "dt = [0.5, 0.25]"), {"kind": "estimate", "x": "time"}),
]


@pytest.mark.parametrize("model, plot", AGREEMENT)
def test_check_plot_agrees_with_the_drawn_figure(model, plot):
    text = f"[model]\n{model}\n"
    ds = run_text(text)
    scenario = parse_scenario(text)
    try:
        drawn_spec = resolve_spec(plot, *dataset_outline(ds))
    except PlotError:
        drawn_spec = None
    try:
        check_plot(plot, scenario.parameters, scenario.variables, run=scenario.run_outline)
        checked = True
    except ScenarioError:
        checked = False
    assert checked == (drawn_spec is not None)
    if drawn_spec is not None:
        ds.attrs["plot"] = json.dumps(plot)
        plt.close(drawn(ds))
