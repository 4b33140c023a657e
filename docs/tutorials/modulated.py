"""Entanglement under a modulated coupling: the periodic steady state (Floquet) of the single cavity's linearized
dynamics when its optomechanical coupling is modulated, E_N over the period and its mean against the
unmodulated steady state, over the modulation depth, up to the parametric instability.

Run it as ``python docs/tutorials/modulated.py [OUTDIR]``; it writes ``modulated.toml``, ``modulated.nc`` and
``modulated.png`` into OUTDIR.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import sde_com
from sde_com.physics.model import points

POINT = dict(detuning=1.0, detuning_kind="effective", power=0.05)  # Vitali et al.'s cavity at Δ = ω_m
DEPTHS = np.linspace(0.0, 0.6, 25)
FREQUENCIES = (1.0, 2.0)  # Ω/ω_m
SHOWN = (0.0, 0.2, 0.4)  # depths whose E_N over the period is drawn, at Ω = ω_m
DRIVE_SCENARIO = """\
title = "The single cavity under a modulated drive: its periodic steady state"

[system]
name = "single_cavity"

[model]
detuning = 1.0
detuning_kind = "effective"
power = 0.05  # W

[periodic]
samples = 64

[drive]
kind = "sine"  # the drive amplitude 1 + depth sin(frequency ω_m t)
depth = 0.2
frequency = 1.0
"""


def linearized():
    """(A, D, the coupling's part of A) of the single cavity at POINT, in rad/s: A's entries that couple the
    cavity's quadratures to the mirror's position and back (G_r, G_i of docs/single-cavity.md)."""
    system = sde_com.get_system("single_cavity")
    params = system.resolve(POINT)
    op = points(system, params)[0]
    coupling = np.zeros_like(op.drift)
    for r, c in ((0, 2), (1, 2), (3, 0), (3, 1)):
        coupling[r, c] = op.drift[r, c]
    return op.drift, op.diffusion, coupling, system.reference_rate(params)


def modulated(depth: float, frequency: float) -> sde_com.MatrixSystem:
    """The linearized cavity with its coupling G(t) = G (1 + ε cos Ωt), Ω in units of ω_m."""
    A, D, coupling, omega_m = linearized()
    return sde_com.MatrixSystem(["a", "m"], A, D, time_scale=omega_m,
                                modulation={"frequency": frequency * omega_m, "drift_cos": (depth * coupling).tolist()})


def scenario_text(depth: float, frequency: float) -> str:
    """The same system as a scenario file: its matrices and modulation written out, and a [periodic] table."""
    system = modulated(depth, frequency)
    definition = system.definition()
    rows = lambda m: "[" + ", ".join("[" + ", ".join(f"{x:.17g}" for x in r) + "]" for r in m) + "]"  # noqa: E731
    mod = definition["modulation"]
    return (f'title = "The single cavity with its coupling modulated at depth {depth} and Ω = {frequency} ω_m"\n\n'
            f'[system]\nmodes = ["a", "m"]\ndrift = {rows(definition["drift"])}\n'
            f'diffusion = {rows(definition["diffusion"])}\ntime_scale = {definition["time_scale"]!r}\n\n'
            f'[system.modulation]\nfrequency = {mod["frequency"]!r}\ndrift_cos = {rows(mod["drift_cos"])}\n\n'
            "[periodic]\nsamples = 64\n")


def main(outdir="."):
    outdir = Path(outdir)
    # 1. over the depth, at two modulation frequencies, from Python
    mean, most, rate = {}, {}, {}
    for frequency in FREQUENCIES:
        runs = [sde_com.periodic_sweep(64, system=modulated(e, frequency)) for e in DEPTHS]
        mean[frequency] = np.array([float(r.logneg_periodic_mean.sel(pair="a-m")) for r in runs])
        most[frequency] = np.array([float(r.logneg_periodic_max.sel(pair="a-m")) for r in runs])
        rate[frequency] = np.array([float(r.growth_rate) for r in runs])
    unmodulated = mean[1.0][0]

    # 2. one point as a scenario file run to netCDF, over the phase
    toml = outdir / "modulated.toml"
    toml.write_text(scenario_text(0.4, 1.0))
    path = outdir / "modulated.nc"
    sde_com.run_scenario_to_file(sde_com.load_scenario(toml), path, force=True)
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    shown = {e: sde_com.periodic_sweep(64, system=modulated(e, 1.0)).logneg_periodic.sel(pair="a-m").values
             for e in SHOWN}

    # 3. the full model: the drive itself modulated, 1 + 0.2 sin(ω_m t), its mean field's limit cycle found first
    drive = outdir / "modulated_drive.toml"
    drive.write_text(DRIVE_SCENARIO)
    driven = sde_com.run_scenario(sde_com.load_scenario(drive))

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    phase = ds.phase.values
    for e, logneg in shown.items():
        left.plot(phase, logneg, label=f"depth ε = {e}")
    left.plot(phase, ds.logneg_periodic.sel(pair="a-m").values, "k:", lw=2, label="ε = 0.4 from the scenario file")
    left.plot(phase, driven.logneg_periodic.sel(pair="a-m").values, "C3--",
              label="modulated drive, depth 0.2 (limit cycle)")
    left.set_xlabel("modulation phase Ωt (rad)")
    left.set_ylabel("E_N (cavity, mirror)")
    left.legend(fontsize=8)
    for frequency, color in zip(FREQUENCIES, ("C0", "C1"), strict=True):
        right.plot(DEPTHS, mean[frequency], "-", color=color, label=f"mean over the period, Ω = {frequency:g} ω_m")
        right.plot(DEPTHS, most[frequency], "--", color=color, label=f"maximum over the period, Ω = {frequency:g} ω_m")
        unstable = DEPTHS[rate[frequency] >= 0]
        if unstable.size:
            right.axvline(unstable[0], color=color, lw=0.8, ls=":", label=f"unstable from here, Ω = {frequency:g} ω_m")
    right.axhline(unmodulated, color="k", lw=0.8, label="unmodulated steady state")
    right.set_xlabel("modulation depth ε of the coupling")
    right.set_ylabel("E_N (cavity, mirror)")
    right.legend(fontsize=7)
    figure = outdir / "modulated.png"
    fig.savefig(figure, dpi=110)
    plt.close(fig)
    return {"figure": figure, "mean": mean, "max": most, "rate": rate, "unmodulated": unmodulated,
            "file_logneg": ds.logneg_periodic.sel(pair="a-m").values, "python_logneg": shown[0.4],
            "file_stable": bool(ds.stable_periodic), "drive_stable": bool(driven.stable_periodic),
            "drive_logneg": driven.logneg_periodic.sel(pair="a-m").values}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
