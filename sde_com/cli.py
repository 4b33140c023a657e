"""The ``sde-com`` command line: run a scenario, plot a result, benchmark. Thin: the work is elsewhere."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


def _run(args) -> None:
    from .io import check_writable
    from .scenario import check_plot, load_scenario, run_scenario_to_file

    out = Path(args.output)
    png = Path(args.plot_file) if args.plot_file else out.with_suffix(".png")
    check_writable(out, args.force)  # fail before any work
    if args.plot or args.plot_file:
        check_writable(png, args.force)
    scenario = load_scenario(args.scenario)
    if args.plot or args.plot_file:  # a figure that cannot be drawn fails before any work
        check_plot(scenario.plot, scenario.parameters, scenario.variables)
    ds = run_scenario_to_file(scenario, out, force=args.force)
    print(f"wrote {out}")
    if args.plot or args.plot_file:
        from .plot import plot_dataset

        plot_dataset(ds, png, force=args.force)
        print(f"wrote {png}")


def _plot(args) -> None:
    from .io import read_dataset
    from .plot import plot_dataset

    src = Path(args.dataset)
    if not src.exists():
        raise FileNotFoundError(f"dataset {str(src)!r} does not exist")
    png = Path(args.output) if args.output else src.with_suffix(".png")
    try:
        ds = read_dataset(src)
    except OSError as exc:
        raise ValueError(f"cannot read dataset {str(src)!r}: {exc}") from exc
    plot_dataset(ds, png, force=args.force)
    print(f"wrote {png}")


def _bench(args) -> None:
    from .bench import benchmark_steady_chain

    if args.points < 1 or args.baseline_points < 1 or args.repeat < 1:
        raise ValueError("--points, --baseline-points and --repeat must be >= 1")
    r = benchmark_steady_chain(args.points, args.baseline_points, args.repeat)
    print(f"steady-state chain: {r['chain_us_per_point']:.2f} us/point ({r['chain_points_per_s']:.3g} points/s, "
          f"median of {r['repeat']}, {r['points']} points)")
    print(f"scipy solve_continuous_lyapunov loop: {r['scipy_loop_us_per_point']:.1f} us/point "
          f"({r['baseline_points']} points)")
    print(f"speed-up: {r['speedup']:.1f}x")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sde-com", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario file and write a netCDF dataset")
    run.add_argument("scenario", help="scenario TOML file")
    run.add_argument("-o", "--output", required=True, help="output netCDF file")
    run.add_argument("--force", action="store_true", help="overwrite existing outputs")
    run.add_argument("--plot", action="store_true", help="also draw the figure (OUTPUT with .png)")
    run.add_argument("--plot-file", help="draw the figure to this PNG file")
    run.set_defaults(func=_run)
    plot = sub.add_parser("plot", help="draw the figure of a dataset written by 'run'")
    plot.add_argument("dataset")
    plot.add_argument("-o", "--output", help="PNG file (default: DATASET with .png)")
    plot.add_argument("--force", action="store_true", help="overwrite an existing PNG")
    plot.set_defaults(func=_plot)
    bench = sub.add_parser("bench", help="benchmark the steady-state chain against a scipy loop")
    bench.add_argument("--points", type=int, default=200_000)
    bench.add_argument("--baseline-points", type=int, default=2_000)
    bench.add_argument("--repeat", type=int, default=5)
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, IsADirectoryError) as exc:
        print(f"sde-com: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("sde-com: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
