"""The ``sde-com`` command line: bad input exits 2 with a message naming the key and what is allowed, and
writes nothing; outputs are written atomically with ordinary permissions; --force, --plot, plot, bench."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import matplotlib.figure
import pytest
import xarray as xr
from conftest import PNG_MAGIC, write_scenario

from sde_com.cli import EXIT_BAD_INPUT, main
from sde_com.results.io import write_dataset
from sde_com.results.sweep import SWEEP_PARAMETERS, VARIABLE_INFO, sweep

OLD_BYTES = b"an earlier output that must survive\n"

# A small, fast scenario with a plot spec (3 x 2 points).
SMALL = """title = "small test scenario"

[model]
detuning = [0.0, 1.0, 2.0]
direction = ["ccw", "cw"]
J = 0.0

[output]
variables = ["logneg", "photons", "stable", "n_branches"]

[plot]
kind = "lines"
x = "detuning"
y = ["logneg"]
hue = ["direction"]
"""


def listing(folder: Path) -> list[str]:
    """Every entry of the folder, hidden temporaries included."""
    return sorted(p.name for p in folder.iterdir())


# Bad scenario values: (scenario text, fragments the message must contain: the key and what is allowed).
ALL_PARAMETERS = [repr(p) for p in SWEEP_PARAMETERS]
BAD_SCENARIOS = {
    "negative-mass": ("[model]\nmass = -1e-11\n", ["mass", "> 0", "-1e-11"]),
    "quality-factor-zero": ("[model]\nquality_factor = 0\n", ["quality_factor", "> 0"]),
    "quality-factor-zero-float": ("[model]\nquality_factor = 0.0\n", ["quality_factor", "> 0"]),
    "quality-factor-negative": ("[model]\nquality_factor = -3.2e7\n", ["quality_factor", "> 0"]),
    "quality-factor-negative-in-list": ("[model]\nquality_factor = [3.2e7, -1.0]\n", ["quality_factor", "> 0"]),
    "temperature-negative": ("[model]\ntemperature = -0.1\n", ["temperature", ">= 0", "-0.1"]),
    "temperature-negative-range": ("[model]\ntemperature = { start = -1.0, stop = 1.0, num = 3 }\n",
                                   ["temperature", ">= 0"]),
    "nan-scalar": ("[model]\npower = nan\n", ["power", "finite", "nan"]),
    "nan-in-list": ("[model]\ndetuning = [0.0, nan]\n", ["detuning", "finite"]),
    "nan-range-start": ("[model]\nJ = { start = nan, stop = 1.0, num = 3 }\n", ["model.J.start", "finite"]),
    "inf-range-stop": ("[model]\nJ = { start = 0.0, stop = inf, num = 3 }\n", ["model.J.stop", "finite"]),
    "unknown-model-key": ("[model]\nfoo = 1.0\n", ["'foo'", "[model]", "allowed", *ALL_PARAMETERS]),
    "unknown-model-key-case": ("[model]\nomega = 1.0\n", ["'omega'", "allowed", "'Omega'"]),
    "unknown-top-level-table": ("[modle]\nJ = 0.0\n",
                                ["'modle'", "allowed", "'model'", "'output'", "'plot'", "'title'"]),
    "unknown-top-level-key": ("titel = 'x'\n", ["'titel'", "allowed", "'title'"]),
    "model-not-a-table": ("model = 3\n", ["[model]", "table"]),
    "range-num-zero": ("[model]\ndetuning = { start = 0.0, stop = 1.0, num = 0 }\n",
                       ["model.detuning.num", "integer", ">= 1", "0"]),
    "range-num-negative": ("[model]\ndetuning = { start = 0.0, stop = 1.0, num = -3 }\n",
                           ["model.detuning.num", "integer", ">= 1", "-3"]),
    "range-num-float": ("[model]\ndetuning = { start = 0.0, stop = 1.0, num = 2.5 }\n",
                        ["model.detuning.num", "integer", "2.5"]),
    "range-num-integral-float": ("[model]\ndetuning = { start = 0.0, stop = 1.0, num = 3.0 }\n",
                                 ["model.detuning.num", "integer", "3.0"]),
    "range-num-string": ("[model]\ndetuning = { start = 0.0, stop = 1.0, num = \"3\" }\n",
                         ["model.detuning.num", "integer"]),
    "range-num-bool": ("[model]\ndetuning = { start = 0.0, stop = 1.0, num = true }\n",
                       ["model.detuning.num", "integer"]),
    "range-missing-key": ("[model]\ndetuning = { start = 0.0, num = 3 }\n",
                          ["model.detuning", "['start', 'stop', 'num']", "missing ['stop']"]),
    "range-extra-key": ("[model]\ndetuning = { start = 0.0, stop = 1.0, num = 3, step = 0.5 }\n",
                        ["model.detuning", "['start', 'stop', 'num']", "unknown ['step']"]),
    "direction-scalar": ("[model]\ndirection = \"up\"\n", ["direction", "'ccw'", "'cw'", "up"]),
    "direction-in-list": ("[model]\ndirection = [\"cw\", \"left\"]\n", ["direction", "'ccw'", "'cw'", "left"]),
    "direction-uppercase": ("[model]\ndirection = \"CW\"\n", ["direction", "'ccw'", "'cw'", "CW"]),
    "empty-list": ("[model]\nJ = []\n", ["model.J", "at least one value"]),
    "bool-value": ("[model]\nJ = true\n", ["J", "real number"]),
    "string-value": ("[model]\npower = \"20 mW\"\n", ["power", "real number"]),
    "nested-list": ("[model]\nJ = [[0.0, 1.0]]\n", ["J", "1-D"]),
    "unknown-output-variable": ("[model]\nJ = 0.0\n[output]\nvariables = [\"logneg\", \"entropy\"]\n",
                                ["output.variables", "'entropy'", "allowed",
                                 *[repr(v) for v in VARIABLE_INFO]]),
    "empty-output-variables": ("[output]\nvariables = []\n", ["output.variables", "allowed", "'logneg'"]),
    "unknown-output-key": ("[output]\nvars = [\"logneg\"]\n", ["'vars'", "[output]", "allowed", "'variables'"]),
    "unknown-plot-key": ("[plot]\ncolour = \"red\"\n", ["'colour'", "[plot]", "allowed", "'kind'"]),
    "invalid-toml": ("[model\nJ = 0.0\n", ["scenario.toml", "not valid TOML", "line 1"]),
    "invalid-toml-value": ("[model]\nJ = 1e\n", ["scenario.toml", "not valid TOML"]),
}


@pytest.mark.parametrize("existing", [False, True], ids=["no-output", "existing-output-forced"])
@pytest.mark.parametrize("text, fragments", BAD_SCENARIOS.values(), ids=BAD_SCENARIOS.keys())
def test_bad_scenario_exits_2_naming_key_and_writes_nothing(tmp_path, capsys, text, fragments, existing):
    scenario = write_scenario(tmp_path, text)
    out = tmp_path / "out.nc"
    args = ["run", str(scenario), "-o", str(out), "--plot"]
    if existing:  # even with --force, a bad scenario must leave an earlier output alone
        out.write_bytes(OLD_BYTES)
        args.append("--force")
    before = listing(tmp_path)

    assert main(args) == EXIT_BAD_INPUT

    captured = capsys.readouterr()
    assert captured.err.startswith("sde-com: error: ")
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in captured.err, f"{fragment!r} missing from {captured.err!r}"
    assert captured.out == ""
    assert listing(tmp_path) == before  # no .nc, no .png, no temporary file
    if existing:
        assert out.read_bytes() == OLD_BYTES


@pytest.mark.parametrize("key", ["output", "plot"])
def test_non_table_output_or_plot_exits_2(tmp_path, capsys, key):
    scenario = write_scenario(tmp_path, f"{key} = 3\n")
    out = tmp_path / "out.nc"
    assert main(["run", str(scenario), "-o", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"[{key}]" in err and "table" in err
    assert listing(tmp_path) == ["scenario.toml"]


def test_bad_plot_spec_with_plot_writes_nothing(tmp_path, capsys):
    scenario = write_scenario(tmp_path, "[model]\ndetuning = [0.0, 1.0]\n[plot]\nkind = \"bar\"\n")
    out = tmp_path / "out.nc"
    assert main(["run", str(scenario), "-o", str(out), "--plot"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "plot.kind" in err and "'lines'" in err and "'map'" in err
    assert listing(tmp_path) == ["scenario.toml"]


def test_missing_scenario_file(tmp_path, capsys):
    missing = tmp_path / "no-such-scenario.toml"
    assert main(["run", str(missing), "-o", str(tmp_path / "out.nc")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: ")
    assert "no-such-scenario.toml" in err and "No such file" in err
    assert listing(tmp_path) == []


def test_scenario_path_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "scenario.toml"
    folder.mkdir()
    assert main(["run", str(folder), "-o", str(tmp_path / "out.nc")]) == EXIT_BAD_INPUT
    assert "scenario.toml" in capsys.readouterr().err
    assert listing(tmp_path) == ["scenario.toml"]


def test_output_folder_missing(tmp_path, capsys):
    scenario = write_scenario(tmp_path, SMALL)
    out = tmp_path / "nowhere" / "out.nc"
    assert main(["run", str(scenario), "-o", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "nowhere" in err and "does not exist" in err
    assert listing(tmp_path) == ["scenario.toml"]


def test_missing_arguments_are_usage_errors(capsys):
    assert main(["run"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: ") and err.count("\n") == 1, err  # one line, not the usage block
    assert "--output" in err


# --force -------------------------------------------------------------------------------------------


def test_existing_output_kept_without_force(tmp_path, capsys):
    scenario = write_scenario(tmp_path, SMALL)
    out = tmp_path / "out.nc"
    out.write_bytes(OLD_BYTES)
    assert main(["run", str(scenario), "-o", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "out.nc" in err and "exists" in err and "--force" in err
    assert out.read_bytes() == OLD_BYTES
    assert listing(tmp_path) == ["out.nc", "scenario.toml"]


def test_existing_png_blocks_run_before_any_work(tmp_path, capsys):
    scenario = write_scenario(tmp_path, SMALL)
    png = tmp_path / "out.png"
    png.write_bytes(OLD_BYTES)
    assert main(["run", str(scenario), "-o", str(tmp_path / "out.nc"), "--plot"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "out.png" in err and "--force" in err
    assert png.read_bytes() == OLD_BYTES
    assert listing(tmp_path) == ["out.png", "scenario.toml"]  # the .nc was not written either


def test_existing_output_overwritten_with_force(tmp_path, capsys):
    scenario = write_scenario(tmp_path, SMALL)
    out = tmp_path / "out.nc"
    out.write_bytes(OLD_BYTES)
    assert main(["run", str(scenario), "-o", str(out), "--force"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with xr.open_dataset(out) as ds:
        assert set(ds.data_vars) == {"logneg", "photons", "stable", "n_branches"}
        assert ds.sizes["detuning"] == 3 and list(ds["direction"].values) == ["ccw", "cw"]
        assert ds.attrs["scenario"] == SMALL
    assert listing(tmp_path) == ["out.nc", "scenario.toml"]


# Plots ---------------------------------------------------------------------------------------------


def test_run_with_plot_writes_png_beside_dataset(tmp_path, capsys):
    scenario = write_scenario(tmp_path, SMALL)
    out = tmp_path / "out.nc"
    assert main(["run", str(scenario), "-o", str(out), "--plot"]) == 0
    stdout = capsys.readouterr().out
    png = tmp_path / "out.png"
    assert f"wrote {out}" in stdout and f"wrote {png}" in stdout
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert listing(tmp_path) == ["out.nc", "out.png", "scenario.toml"]


def test_run_with_plot_file(tmp_path):
    scenario = write_scenario(tmp_path, SMALL)
    png = tmp_path / "figure.png"
    assert main(["run", str(scenario), "-o", str(tmp_path / "out.nc"), "--plot-file", str(png)]) == 0
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert listing(tmp_path) == ["figure.png", "out.nc", "scenario.toml"]


def test_plot_subcommand(tmp_path, capsys):
    scenario = write_scenario(tmp_path, SMALL)
    out = tmp_path / "out.nc"
    assert main(["run", str(scenario), "-o", str(out)]) == 0
    png = tmp_path / "X.png"
    assert main(["plot", str(out), "-o", str(png)]) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    assert png.read_bytes().startswith(PNG_MAGIC)
    # the default name is DATASET with .png; a second plot needs --force
    assert main(["plot", str(out)]) == 0
    default = tmp_path / "out.png"
    assert default.read_bytes().startswith(PNG_MAGIC)
    first = default.read_bytes()
    assert main(["plot", str(out)]) == EXIT_BAD_INPUT
    assert "--force" in capsys.readouterr().err
    assert default.read_bytes() == first
    assert main(["plot", str(out), "--force"]) == 0
    assert listing(tmp_path) == ["X.png", "out.nc", "out.png", "scenario.toml"]


def test_plot_of_missing_dataset(tmp_path, capsys):
    missing = tmp_path / "missing.nc"
    assert main(["plot", str(missing), "-o", str(tmp_path / "X.png")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("sde-com: error: ") and "missing.nc" in err and "does not exist" in err
    assert listing(tmp_path) == []


def test_plot_of_file_that_is_not_netcdf(tmp_path, capsys):
    bad = tmp_path / "bad.nc"
    bad.write_text("not a netCDF file\n")
    assert main(["plot", str(bad), "-o", str(tmp_path / "X.png")]) == EXIT_BAD_INPUT
    assert "bad.nc" in capsys.readouterr().err
    assert listing(tmp_path) == ["bad.nc"]


# Atomic writes and permissions ---------------------------------------------------------------------


def broken_writer(exc_type, calls):
    """A stand-in for Dataset.to_netcdf that writes part of a file to its target, then fails."""

    def to_netcdf(self, path, *args, **kwargs):
        calls.append(Path(path))
        Path(path).write_bytes(b"\x89HDF\r\n\x1a\n partial")
        raise exc_type("interrupted midway")

    return to_netcdf


@pytest.mark.parametrize("existing", [False, True], ids=["no-output", "existing-output-forced"])
def test_interrupted_run_leaves_no_file(tmp_path, capsys, monkeypatch, existing):
    scenario = write_scenario(tmp_path, SMALL)
    out = tmp_path / "out.nc"
    args = ["run", str(scenario), "-o", str(out)]
    if existing:
        out.write_bytes(OLD_BYTES)
        args.append("--force")
    before = listing(tmp_path)
    calls = []
    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken_writer(KeyboardInterrupt, calls))

    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err
    # the file being written was beside the output, or in the run's checkpoint folder beside it (streamed)
    assert len(calls) == 1 and calls[0].parent in (tmp_path, tmp_path / "out.nc.parts")
    assert not calls[0].exists()
    # no output and no temporary file; only the checkpoint of the finished units, which --resume completes
    assert [name for name in listing(tmp_path) if name != "out.nc.parts"] == before
    if existing:
        assert out.read_bytes() == OLD_BYTES
    monkeypatch.undo()
    assert main(["run", str(scenario), "-o", str(out), "--resume"]) == 0
    assert xr.open_dataset(out).sizes["detuning"] > 0
    assert "out.nc.parts" not in listing(tmp_path)


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_failed_write_dataset_leaves_no_file(tmp_path, monkeypatch, exc_type):
    ds = sweep(detuning=[0.0, 1.0], store_cov=False)
    calls = []
    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken_writer(exc_type, calls))
    with pytest.raises(exc_type):
        write_dataset(ds, tmp_path / "out.nc")
    assert len(calls) == 1 and calls[0].parent == tmp_path
    assert listing(tmp_path) == []


def test_failed_plot_leaves_no_png(tmp_path, monkeypatch):
    scenario = write_scenario(tmp_path, SMALL)

    def savefig(self, fname, *args, **kwargs):
        Path(fname).write_bytes(PNG_MAGIC + b" partial")
        raise RuntimeError("interrupted midway")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    with pytest.raises(RuntimeError):
        main(["run", str(scenario), "-o", str(tmp_path / "out.nc"), "--plot"])
    assert listing(tmp_path) == ["out.nc", "scenario.toml"]  # the dataset was complete before the plot


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_have_ordinary_permissions(tmp_path, umask, mode):
    scenario = write_scenario(tmp_path, SMALL)
    out = tmp_path / "out.nc"
    old = os.umask(umask)
    try:
        assert main(["run", str(scenario), "-o", str(out), "--plot"]) == 0
        assert main(["plot", str(out), "-o", str(tmp_path / "X.png")]) == 0
    finally:
        os.umask(old)
    for name in ("out.nc", "out.png", "X.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


# bench ---------------------------------------------------------------------------------------------


# every part of `sde-com bench` runs once and prints its figures (one test a part: they run in parallel)
BENCH_LINES = {
    "chain": [r"^speed-up: \d+(\.\d+)?x$", r"2000 points"],
    "sweep": [r"^sweep end to end \(\d+ points.*x faster than the scipy loop"],
    "time-domain": [r"ensemble end to end: [\d.]+ s, kernels alone [\d.]+ s"],
    "traces": [r"^noise traces end to end .* = [\d.]+x netCDF4 writing the same arrays"],
    "startup": [r"^startup: import numpy, numba, xarray [\d.]+ s; import sde_com"],
    "compile": [r"^first run of \S+ on an empty kernel cache: [\d.]+ s against [\d.]+ s warm"],
    # the kernel throughput for N modes, GFLOP/s against the peak for N ≥ 10
    "modes": [*(rf"N = +{n}: +[\d.]+ M trajectory-steps/s" for n in (1, 2, 3, 4, 5, 6, 10, 20)),
              r"N = 20: .*% of one core's peak per core"],
    "conditional": [r"^conditional stepper .*: [\d.]+x its cost per trajectory-step",
                    r"^QuTiP smesolve .* ms per trajectory against sde_com's"],
    "filter": [r"^sde-com filter of a [\d.]+ MB record .* peak \d+ MB, against a plain netCDF4 .*: [\d.]+x$"],
    "periodic": [rf"^periodic state, {name}: a \d+-point sweep .* s with 2 \([\d.]+x\); per point .*x faster "
                 r"than its transient$"
                 for name in ("cavity", "parametric")],
}


def test_bench_parts_are_all_tested():
    from sde_com.cli import BENCH_PARTS

    assert set(BENCH_LINES) == set(BENCH_PARTS)


@pytest.mark.parametrize("part", BENCH_LINES)
def test_bench_prints_speedup(capsys, part):
    # the smoke test of each part, at a hundredth of the issue-sized jobs (the figures are measured at full size)
    assert main(["bench", "--points", "2000", "--baseline-points", "50", "--repeat", "1", "--e2e-repeat", "1",
                 "--e2e-scale", "0.01", "--only", part]) == 0
    stdout = capsys.readouterr().out
    for line in BENCH_LINES[part]:
        assert re.search(line, stdout, flags=re.MULTILINE), stdout


@pytest.mark.parametrize("option", [["--points", "0"], ["--baseline-points", "0"], ["--repeat", "0"],
                                    ["--points", "-5"], ["--e2e-scale", "0"], ["--e2e-scale", "2"]])
def test_bench_rejects_non_positive_counts(capsys, option):
    assert main(["bench", *option]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert option[0] in err and (">= 1" in err or "<= 1" in err)


# The real console script ---------------------------------------------------------------------------


def test_console_script_exits_2_on_bad_input(tmp_path):
    script = Path(sys.executable).parent / "sde-com"
    if not script.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    scenario = write_scenario(tmp_path, "[model]\nmass = -1e-11\n")
    out = tmp_path / "out.nc"
    result = subprocess.run([str(script), "run", str(scenario), "-o", str(out), "--plot"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert result.stderr.startswith("sde-com: error: ") and "Traceback" not in result.stderr
    assert "mass" in result.stderr and "> 0" in result.stderr
    assert listing(tmp_path) == ["scenario.toml"]


@pytest.mark.parametrize("command", ["run", "plot"])
def test_missing_matplotlib_is_a_clear_error_before_any_work(command, tmp_path, capsys, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a))
    scenario = tmp_path / "s.toml"
    scenario.write_text("[model]\ndetuning = [0.5, 1.0]\n")
    out = tmp_path / "out.nc"
    if command == "run":
        argv = ["run", str(scenario), "-o", str(out), "--plot", "--quiet"]
    else:
        write_dataset(sweep(detuning=[0.5, 1.0]), out)
        argv = ["plot", str(out)]
    assert main(argv) == EXIT_BAD_INPUT
    assert "pip install '.[plot]'" in capsys.readouterr().err
    assert not out.with_suffix(".png").exists()
    assert out.exists() == (command == "plot")  # a refused run writes nothing
