"""The ``sde-com`` command line: run a scenario, plot a result, benchmark. Thin: the work is elsewhere.

Exit statuses (``sde_com.errors``): 0 done; 2 a user's error (a scenario, a file, an argument), with a message;
3 a numerical failure on valid input, with a message naming the parameters; 1 units that failed (reported, the
others kept for ``--resume``) or a bug (a traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import warnings
from pathlib import Path

from sde_com.errors import NumericalError, RunWarning, UnitFailed, UserError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NUMERICAL = 3
EXIT_INTERRUPTED = 130
MAX_WORKERS_PER_CORE = 4  # a LocalCluster larger than this only waits for its own start-up
NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")  # names tools take for netCDF
# the file errors of a user's paths (the scenario, the output and its folder)
FILE_ERRORS = (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def _require_matplotlib() -> None:
    """Drawing needs the plot extra: say so (exit 2) before any work, not with a traceback after it."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UserError("drawing a figure needs matplotlib, the plot extra: from a clone of sde_com, "
                         "pip install '.[plot]'")


def _workers(text: str) -> int:
    """--workers: an integer from 1 to MAX_WORKERS_PER_CORE per core (argparse reports the error)."""
    most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= most:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {most} ({MAX_WORKERS_PER_CORE} per core of "
                                         f"this machine), got {text!r}")
    return n


class _Parser(argparse.ArgumentParser):
    """A command-line mistake as the one line every user error gets (exit 2), not argparse's usage block."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"sde-com: error: {message} (see {self.prog} --help)\n")


def _check_run_options(args) -> None:
    if args.workers is not None and args.scheduler is not None:
        raise UserError("give --workers or --scheduler, not both")
    if args.scheduler is not None and not args.scheduler.strip():
        raise UserError("--scheduler needs the address of a Dask scheduler (host:port), got an empty string")
    if args.resume and args.force:
        raise UserError("give --resume (keep the checkpoint's finished units) or --force (start over), not both")
    for option, name in (("--output", args.output), ("--plot-file", args.plot_file)):
        if name is not None and (not name or name.endswith(("/", os.sep))):
            raise UserError(f"{option} {name!r} names a folder, not a file; give a file name")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _run(args) -> None:
    from sde_com.results.io import check_writable
    from sde_com.runs.engine import execute, may_replace
    from sde_com.runs.scenario import check_plot, load_scenario

    _check_run_options(args)
    out = Path(args.output)
    png = Path(args.plot_file) if args.plot_file else (out.with_suffix(".png") if args.plot else None)
    overwrite = may_replace(out, args.force, args.resume)
    for path in (out, png):
        if path is not None and _same_file(path, Path(args.scenario)):
            raise UserError(f"output {str(path)!r} is the scenario file itself; give another name")
    if png is not None and png.suffix.lower() != ".png":
        raise UserError(f"--plot-file {str(png)!r}: the figure is a PNG; give a name ending in .png")
    if png is not None and os.path.abspath(png) == os.path.abspath(out):
        raise UserError(f"--plot-file {str(png)!r} is the output itself; give the figure another name")
    check_writable(out, overwrite)  # fail before any work
    if png is not None:
        _require_matplotlib()
        check_writable(png, overwrite)
    scenario = load_scenario(args.scenario)
    if png is not None:  # a figure that cannot be drawn fails before any work
        check_plot(scenario.plot, scenario.parameters, scenario.variables, run=scenario.run_outline)
    if out.suffix.lower() not in NETCDF_SUFFIXES:  # once the scenario and the figure passed their checks
        warnings.warn(f"output {str(out)!r} is written as netCDF; its name does not say so (no "
                      f"{'/'.join(NETCDF_SUFFIXES)})", RunWarning, stacklevel=2)
    if args.dry_run:
        from sde_com.runs.engine import dry_run

        print(dry_run(scenario, out).line(), file=sys.stderr)
        return
    with _quiet_compile(args.quiet), _compiling(scenario):
        execute(scenario, out, force=args.force, resume=args.resume, workers=args.workers,
                scheduler=args.scheduler, quiet=args.quiet,
                history=shlex.join(["sde-com", *args.argv]))  # the file's history attribute
    print(f"wrote {out}")
    if png is not None:
        _draw(out, png, overwrite)


@contextlib.contextmanager
def _compiling(scenario):
    """Say that the run compiles its kernels first, where the cache lacks them, and let a second process
    compile part of them meanwhile (the system's ``compile_aside``); that process does not outlive the run."""
    from sde_com.kernel_cache import announce_compile, compile_aside, is_cached

    cold = any(not is_cached(m) for m in scenario.system.kernel_modules)
    announce_compile(scenario.kind.kernel_modules(scenario))
    aside = compile_aside(scenario.system.compile_aside) if cold else None
    try:
        yield
    finally:
        if aside is not None and aside.poll() is None:
            aside.terminate()
            aside.wait()


@contextlib.contextmanager
def _quiet_compile(quiet: bool):
    """No compile notice while the run goes, where --quiet asks (``kernel_cache.QUIET_VARIABLE``, which the
    workers a run starts inherit); the environment as it was afterwards."""
    from sde_com.kernel_cache import QUIET_VARIABLE

    saved = os.environ.get(QUIET_VARIABLE)
    if quiet:
        os.environ[QUIET_VARIABLE] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(QUIET_VARIABLE, None)
        else:
            os.environ[QUIET_VARIABLE] = saved


def _draw(out: Path, png: Path, force: bool) -> None:
    """The figure of the written dataset ``out``; a figure that cannot be drawn is exit 2, with no PNG."""
    import xarray as xr

    from sde_com.plot import PlotError, plot_dataset

    with xr.open_dataset(out) as ds:  # lazily: streamed traces may not fit in memory
        try:
            plot_dataset(ds, png, force=force)
        except PlotError as exc:  # the dataset is complete
            raise PlotError(f"{out} is written, but its figure cannot be drawn: {exc}") from exc
    print(f"wrote {png}")


def _plot(args) -> None:
    _require_matplotlib()
    import xarray as xr

    from sde_com.plot import plot_dataset

    src = Path(args.dataset)
    if not src.exists():
        raise FileNotFoundError(f"dataset {str(src)!r} does not exist")
    png = Path(args.output) if args.output else src.with_suffix(".png")
    try:  # lazily: only what the figure draws is read (a trace file may not fit in memory)
        ds = xr.open_dataset(src, engine="netcdf4")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read dataset {str(src)!r} (not a netCDF file?): {exc}") from exc
    with ds:
        plot_dataset(ds, png, force=args.force)
    print(f"wrote {png}")


def _filter(args) -> None:
    """``sde-com filter SCENARIO RECORDS -o OUT``: the Kalman filter of the scenario's system and detectors,
    streamed block by block from the record file to the output (any size in bounded memory)."""
    import inspect

    import xarray as xr

    from sde_com.inputs import check_input_file
    from sde_com.results.io import check_writable
    from sde_com.runs.scenario import load_scenario
    from sde_com.simulation.conditional import filter_record_file

    out = Path(args.output)
    check_writable(out, args.force)  # fail before any work
    scenario = load_scenario(args.scenario)
    measures = scenario.tables.get("measure")
    if measures is None:
        raise UserError(f"scenario {args.scenario!r} has no [[measure]] tables: the filter needs the detectors")
    if scenario.dimensions:
        raise UserError(f"scenario {args.scenario!r} sweeps {scenario.dimensions}: the filter runs one operating "
                        "point (give every [model] value as a scalar)")
    src = Path(args.records)
    check_input_file(src, "record file", None)
    if _same_file(out, src):
        raise UserError(f"output {str(out)!r} is the record file itself; give another name")
    # no index of the time axis (a long record's would take the memory the blocks save), where xarray can
    no_index = ({"create_default_indexes": False}
                if "create_default_indexes" in inspect.signature(xr.open_dataset).parameters else {})
    try:
        records = xr.open_dataset(src, engine="netcdf4", cache=False, **no_index)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read record file {str(src)!r} (not a netCDF file?): {exc}") from exc
    sim = scenario.simulation
    initial, method = (sim.initial, sim.method) if sim is not None else ("steady", "exact")
    with records, _quiet_compile(args.quiet):
        filter_record_file(records, list(measures), output=out, force=args.force,
                           history=shlex.join(["sde-com", *args.argv]), workers=args.workers or 1,
                           initial=initial, method=method, feedback=scenario.tables.get("feedback"),
                           system=scenario.system, **dict(scenario.parameters))
    if not args.quiet:
        print(f"wrote {out}")


BENCH_PARTS = ("chain", "sweep", "time-domain", "traces", "startup", "compile", "modes", "conditional", "filter",
               "periodic")


def _bench(args) -> None:
    from sde_com.benchmarks.end_to_end import pinned

    if args.points < 1 or args.baseline_points < 1 or args.repeat < 1 or args.e2e_repeat < 1:
        raise UserError("--points, --baseline-points, --repeat and --e2e-repeat must be >= 1")
    if not 0.0 < args.e2e_scale <= 1.0:
        raise UserError(f"--e2e-scale must be > 0 and <= 1, got {args.e2e_scale}")
    parts = args.only or BENCH_PARTS
    print("BLAS pinned to 1 thread in every baseline; figures are medians")
    chain = None
    if {"chain", "sweep"} & set(parts):
        chain = pinned("sde_com.benchmarks.kernels", "benchmark_steady_chain", points=args.points,
                       baseline_points=args.baseline_points, repeat=args.repeat)
        print(f"steady-state chain: {chain['chain_us_per_point']:.2f} us/point ({chain['chain_points_per_s']:.3g} "
              f"points/s, median of {chain['repeat']}, {chain['points']} points)")
        print(f"scipy solve_continuous_lyapunov loop: {chain['scipy_loop_us_per_point']:.1f} us/point "
              f"({chain['baseline_points']} points)")
        print(f"speed-up: {chain['speedup']:.1f}x")
    for part in parts:
        if part in _E2E:
            _E2E[part](args, chain)


def _bench_sweep(args, chain) -> None:
    from sde_com.benchmarks.end_to_end import benchmark_sweep

    r = benchmark_sweep(chain, args.e2e_repeat)
    print(f"sweep end to end ({r['points']} points, sde-com run without startup): {r['us_per_point']:.2f} us/point = "
          f"{r['over_chain']:.2f}x the chain, {r['scipy_over_e2e']:.1f}x faster than the scipy loop; peak memory "
          f"{r['peak_mb']:.0f} MB, file {r['output_mb']:.0f} MB")


def _bench_time_domain(args, chain) -> None:
    from sde_com.benchmarks.end_to_end import benchmark_time_domain

    for name, r in benchmark_time_domain(args.e2e_repeat, args.e2e_scale).items():
        print(f"{name.replace('_', '-')} ensemble end to end: {r['wall']:.2f} s, kernels alone {r['kernels']:.2f} s: "
              f"checkpoints, merging, estimators and the file {r['overhead_fraction']:.1%} of the wall time; "
              f"peak memory {r['peak_mb']:.0f} MB")


def _bench_traces(args, chain) -> None:
    from sde_com.benchmarks.end_to_end import benchmark_traces

    for name, r in benchmark_traces(args.e2e_repeat, args.e2e_scale).items():
        print(f"noise traces end to end ({name.replace('_', ' ')}): {r['wall']:.2f} s = {r['over_netcdf4']:.2f}x "
              f"netCDF4 writing the same arrays ({r['netcdf4_mb']:.0f} MB in {r['netcdf4']:.2f} s); peak memory "
              f"{r['peak_mb']:.0f} MB, file "
              f"{r['output_mb']:.0f} MB")


def _bench_startup(args, chain) -> None:
    from sde_com.benchmarks.startup import benchmark_startup

    r = benchmark_startup(repeat=max(1, round(7 * args.e2e_scale)))  # 7 rounds; fewer in a scaled smoke run
    print(f"startup: import numpy, numba, xarray {r['baseline_s']:.2f} s; import sde_com {r['import_s']:.2f} s "
          f"({r['import_ratio']:.2f}x); sde-com --help {r['help_s']:.2f} s ({r['help_ratio']:.2f}x)")


def _bench_compile(args, chain) -> None:
    from sde_com.benchmarks.startup import benchmark_compile

    r = benchmark_compile(args.compile_scenarios, repeat=args.e2e_repeat)
    for name, c in r["scenarios"].items():
        print(f"first run of {name} on an empty kernel cache: {c['cold_s']:.1f} s against {c['warm_s']:.1f} s "
              f"warm (+{c['added_s']:.1f} s)")


def _bench_modes(args, chain) -> None:
    from sde_com.benchmarks.end_to_end import pinned

    r = pinned("sde_com.benchmarks.kernels", "benchmark_modes", repeat=args.repeat,
               steps_per_mode=max(200, round(20_000 * args.e2e_scale)))  # fewer steps in a scaled smoke run
    print(f"exact stepper, {r['n_traj']} trajectories on {r['cores']} core(s); one core's BLAS DGEMM peak "
          f"{r['peak_gflops']:.1f} GFLOP/s (flops: 4(2N)² per trajectory-step)")
    for row in r["modes"].values():
        line = (f"  N = {row['modes']:>2}: {row['rate'] / 1e6:7.2f} M trajectory-steps/s "
                f"({row['with_moments'] / 1e6:.2f} M with moment sums), {row['gflops']:.2f} GFLOP/s")
        if "blas_rate" in row:
            line += (f" = {row['over_peak']:.0%} of one core's peak per core; BLAS batched product "
                     f"(no random draws) {row['blas_gflops']:.2f} GFLOP/s on one core")
        print(line)


def _bench_conditional(args, chain) -> None:
    from sde_com.benchmarks.end_to_end import pinned

    r = pinned("sde_com.benchmarks.kernels", "benchmark_conditional", repeat=args.repeat,
               n_traj=max(20, round(1000 * args.e2e_scale)))
    print(f"conditional stepper (state, record, Kalman filter; single cavity, homodyne): "
          f"{r['rates']['conditional'] / 1e6:.2f} M trajectory-steps/s against the unconditional exact stepper's "
          f"{r['rates']['exact'] / 1e6:.2f} M: {r['cost_ratio']:.2f}x its cost per trajectory-step")
    if "qutip_s_per_trajectory" in r:
        print(f"QuTiP smesolve (12 Fock levels) {r['qutip_s_per_trajectory'] * 1e3:.1f} ms per trajectory against "
              f"sde_com's conditional trajectories {r['sde_com_s_per_trajectory'] * 1e3:.3f} ms on the same watched "
              f"amplifier: {r['qutip_over_sde_com']:.0f}x")


def _bench_filter(args, chain) -> None:
    from sde_com.benchmarks.end_to_end import benchmark_filter

    r = benchmark_filter(1024 * args.e2e_scale, repeat=args.e2e_repeat)
    print(f"sde-com filter of a {r['record_mb']:.0f} MB record ({r['trajectories']} trajectories x {r['steps']} "
          f"steps, one channel, d = 4): {r['filter']:.1f} s, peak {r['filter_mb']:.0f} MB, against a plain netCDF4 "
          f"read of the record and write of the same arrays {r['baseline']:.1f} s (peak {r['baseline_mb']:.0f} MB): "
          f"{r['over_baseline']:.2f}x")


def _bench_periodic(args, chain) -> None:
    from sde_com.benchmarks.end_to_end import benchmark_periodic

    for name, r in benchmark_periodic(args.e2e_repeat, args.e2e_scale).items():
        print(f"periodic state, {name}: a {r['points']}-point sweep (64 samples) {r['sweep']:.2f} s against one "
              f"transient to convergence ({r['periods']} periods) {r['transient']:.2f} s with {r['trajectories']} "
              f"trajectories ({r['transient_over_sweep']:.1f}x the sweep), {r['moments']:.2f} s with 2 "
              f"({r['moments_over_sweep']:.2f}x); per point {1e3 * r['sweep'] / r['points']:.2f} ms, "
              f"{r['moments'] * r['points'] / r['sweep']:.0f}x faster than its transient")


_E2E = {"sweep": _bench_sweep, "time-domain": _bench_time_domain, "traces": _bench_traces,
        "startup": _bench_startup, "compile": _bench_compile, "modes": _bench_modes,
        "conditional": _bench_conditional, "filter": _bench_filter, "periodic": _bench_periodic}


def _bench_sde(args) -> None:
    from sde_com.benchmarks.kernels import benchmark_sde

    if args.trajectories < 1 or args.steps < 1 or args.repeat < 1:
        raise UserError("--trajectories, --steps and --repeat must be >= 1")
    r = benchmark_sde(args.trajectories, args.steps, args.repeat)
    rates = r["rates"]
    for name in ("em", "exact", "numpy"):
        print(f"{name:>6}: {rates[name] / 1e6:.1f} M trajectory-steps/s (median of {args.repeat})")
    print(f"EM kernel / NumPy EM: {r['em_over_numpy']:.1f}x;  EM / exact per step: {r['em_over_exact']:.2f}")
    for name, w in r["time_to_target"].items():
        print(f"{name:>6}: dt = {w['dt']:.4g}/ω_m, pilot {w['pilot_steps']:.3g} steps → relative error "
              f"{w['pilot_rel_err']:.3g}; to {r['target']:.0%}: {w['steps_to_target']:.3g} steps, "
              f"{w['wall_to_target']:.3g} s")
    print(f"time to estimate V to {r['target']:.0%}: exact is {r['exact_speedup_to_target']:.0f}x faster than EM")


def _bench_dask(args) -> None:
    from sde_com.benchmarks.kernels import benchmark_dask

    if args.workers < 1:
        raise UserError(f"--workers must be an integer >= 1, got {args.workers}")
    r = benchmark_dask(args.workers)
    print(f"ensemble, {r['trajectory_steps']:.3g} trajectory-steps in {r['units']} units: in-process "
          f"{r['in_process']:.2f} s, LocalCluster({r['workers']}) {r['dask']:.2f} s "
          f"(start-up {r['cluster_start']:.2f} s)")
    print(f"Dask time beyond the in-process time and the start-up (cluster, workers loading the kernels): "
          f"{r['excess_over_start']:+.2f} s")
    print(f"parallel efficiency (in-process time / Dask time): {r['efficiency']:.2f}; "
          f"{r['efficiency_after_start']:.2f} leaving out the cluster start")
    print(f"overhead per unit: Dask {r['overhead_per_unit_dask'] * 1e3:.1f} ms, in-process "
          f"{r['overhead_per_unit_in_process'] * 1e3:.1f} ms; at the default unit size that is "
          f"{r['overhead_fraction']:.1%} of the Dask run")


def _cache(args) -> None:
    from sde_com import kernel_cache

    if args.clear:
        removed = kernel_cache.clear()
        print(f"removed {len(removed)} folder(s) of compiled kernels from {kernel_cache.cache_dir()}")
    else:
        print(kernel_cache.cache_dir())


def _schema(args) -> None:
    from sde_com.runs.schema import json_schema_text

    if args.output is None:
        sys.stdout.write(json_schema_text())
        return
    from sde_com.results.io import atomic_output

    with atomic_output(args.output, args.force) as tmp:
        tmp.write_text(json_schema_text(), encoding="utf-8")
    print(f"wrote {args.output}")


def build_parser() -> argparse.ArgumentParser:
    from sde_com._version import __version__

    parser = _Parser(prog="sde-com", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sde-com {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario file and write a netCDF dataset")
    run.add_argument("scenario", help="scenario TOML file")
    run.add_argument("-o", "--output", required=True, help="output netCDF file")
    run.add_argument("--force", action="store_true", help="overwrite existing outputs")
    run.add_argument("--plot", action="store_true", help="also draw the figure (OUTPUT with .png)")
    run.add_argument("--plot-file", help="draw the figure to this PNG file (instead of OUTPUT with .png)")
    run.add_argument("--workers", type=_workers, help="run on a local Dask cluster of N worker processes")
    run.add_argument("--scheduler", help="run on the Dask cluster at this scheduler address")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    run.add_argument("--quiet", action="store_true", help="no plan, progress bar or summary on stderr (warnings "
                                                          "still show)")
    run.add_argument("--dry-run", action="store_true", help="check everything and print the plan (units, work, "
                                                            "estimated time, memory, output and scratch), run "
                                                            "nothing and write nothing")
    run.set_defaults(func=_run)
    plot = sub.add_parser("plot", help="draw the figure of a dataset written by 'run'")
    plot.add_argument("dataset")
    plot.add_argument("-o", "--output", help="PNG file (default: DATASET with .png)")
    plot.add_argument("--force", action="store_true", help="overwrite an existing PNG")
    plot.set_defaults(func=_plot)
    filt = sub.add_parser("filter", help="run the Kalman filter of a scenario's system and [[measure]] detectors "
                                         "over a record file (a run's own record, or a laboratory's)")
    filt.add_argument("scenario", help="scenario TOML file with [[measure]] tables, at one operating point")
    filt.add_argument("records", help="netCDF file with a variable 'record' ((trajectory,) time or interval, "
                                      "channel) and a uniform 'time' coordinate in seconds")
    filt.add_argument("-o", "--output", required=True, help="output netCDF file")
    filt.add_argument("--force", action="store_true", help="overwrite an existing output")
    filt.add_argument("--quiet", action="store_true", help="print nothing on success")
    filt.add_argument("--workers", type=_workers, default=None, metavar="N",
                      help="threads filtering the record's trajectories (default 1; the same bits for any N)")
    filt.set_defaults(func=_filter)
    bench = sub.add_parser("bench", help="benchmark the kernels and whole runs against baselines in the same run "
                                         "(the steady-state chain against a scipy loop; sweeps, ensembles and "
                                         "noise traces end to end; startup; compilation)")
    bench.add_argument("--points", type=int, default=200_000, help="points of the chain benchmark")
    bench.add_argument("--baseline-points", type=int, default=2_000, help="points of the scipy loop")
    bench.add_argument("--repeat", type=int, default=5, help="repeats of the chain benchmark")
    bench.add_argument("--e2e-repeat", type=int, default=3, help="fresh processes per end-to-end job (and cold/warm "
                                                                  "pairs of the compile part)")
    bench.add_argument("--e2e-scale", type=float, default=1.0, help="the end-to-end jobs' size (and the startup "
                                                                    "part's rounds, the modes part's steps), as a "
                                                                    "fraction of the issue-sized jobs (0 < scale <= 1)")
    bench.add_argument("--compile-scenarios", nargs="+", default=["scenarios/fig2a.toml"], metavar="SCENARIO",
                       help="scenarios whose first run is timed on an empty kernel cache (default: the main job)")
    bench.add_argument("--only", action="append", choices=BENCH_PARTS,
                       help="run only this part (repeatable; default: all, a few minutes)")
    bench.set_defaults(func=_bench)
    bench_sde = sub.add_parser("bench-sde", help="benchmark the time-domain kernels against NumPy and each other")
    bench_sde.add_argument("--trajectories", type=int, default=2000)
    bench_sde.add_argument("--steps", type=int, default=2000)
    bench_sde.add_argument("--repeat", type=int, default=5)
    bench_sde.set_defaults(func=_bench_sde)
    bench_dask = sub.add_parser("bench-dask", help="benchmark a LocalCluster against in-process threads")
    bench_dask.add_argument("--workers", type=int, default=2)
    bench_dask.set_defaults(func=_bench_dask)
    cache = sub.add_parser("cache", help="print where the compiled kernels are cached (or --clear it)")
    cache.add_argument("--clear", action="store_true", help="remove sde_com's compiled kernels (and nothing else)")
    cache.set_defaults(func=_cache)
    schema = sub.add_parser("schema", help="print the JSON Schema of scenario files (for editors and checkers)")
    schema.add_argument("-o", "--output", help="write it to this file instead")
    schema.add_argument("--force", action="store_true", help="overwrite an existing file")
    schema.set_defaults(func=_schema)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A ``RunWarning`` as one line on stderr; other warnings as Python prints them."""
    if issubclass(category, RunWarning):
        print(f"sde-com: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    """Run the command; → its exit status. A bug (any other exception) propagates: a traceback, exit 1."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a command-line mistake (``_Parser.error``: exit 2)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RunWarning)
            # numpy's and scipy's overflow/invalid-value notes on extreme inputs: the results are checked
            # (NaN, stability, errors with messages), the notes would only be noise around the message
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.showwarning = _show_warning
            args.func(args)
    except (UserError, *FILE_ERRORS) as exc:
        print(f"sde-com: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NumericalError as exc:
        print(f"sde-com: numerical failure: {exc}", file=sys.stderr)
        return EXIT_NUMERICAL
    except UnitFailed as exc:
        print(f"sde-com: error: {exc}", file=sys.stderr)  # units that raised; the others are kept
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        print(f"sde-com: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
