"""A noise-trace dataset: written to netCDF by a scenario, opened and analysed with xarray.

Run it as ``python docs/tutorials/traces.py [OUTDIR]``; it writes ``traces.toml``, ``traces.nc`` and
``traces.png`` into OUTDIR.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from scipy.linalg import expm

import sde_com

SCENARIO = """\
title = "Stationary noise traces at the Fig. 2 peak"

[model]
detuning = 0.75

[simulate]
method = "exact"
dt = 0.25
duration = 200.0
trajectories = 64
traces = 64
seed = 5
initial = "steady"
save_every = 0.25

[output]
variables = ["cov", "trace", "noise"]
"""
MAX_LAG = 60  # autocorrelation up to 60 samples = 15/ω_m


def main(outdir="."):
    outdir = Path(outdir)
    toml = outdir / "traces.toml"
    toml.write_text(SCENARIO)
    path = outdir / "traces.nc"
    sde_com.run_scenario_to_file(sde_com.load_scenario(toml), path, force=True)

    with xr.open_dataset(path) as ds:
        ds = ds.isel(branch=0).load()
    # In the file the time axis is indexed by time_scaled = ω_m·t (the scenario's time unit), with time in
    # seconds beside it (sde_com.read_dataset indexes it by time instead).
    trace = ds.trace                              # (trajectory, time_scaled, quadrature), stationary from t = 0
    cov = ds.cov                                  # Lyapunov V, (row, col)
    n = trace.sizes["trajectory"]

    # Variance of each quadrature: a time average per trajectory, then mean ± standard error over the
    # independent trajectories, against the diagonal of V.
    per_traj = (trace**2).mean("time_scaled")    # (trajectory, quadrature)
    variance = per_traj.mean("trajectory")
    variance_err = per_traj.std("trajectory", ddof=1) / np.sqrt(n)
    expected = xr.DataArray(np.diag(cov.values), coords={"quadrature": trace.quadrature})
    zscore = (variance - expected) / variance_err

    # Autocorrelation of the mechanical position, <q(t + τ) q(t)>, against the analytic (e^{Aτ} V)_qq.
    q = trace.sel(quadrature="q").values          # (trajectory, time_scaled)
    n_t = q.shape[1]
    acf_traj = np.array([(q[:, k:] * q[:, :n_t - k]).mean(axis=1) for k in range(MAX_LAG + 1)]).T
    acf, acf_err = acf_traj.mean(axis=0), acf_traj.std(axis=0, ddof=1) / np.sqrt(n)
    lag_s = ds.time.values[:MAX_LAG + 1]          # seconds (the trace starts at t = 0)
    lag = ds.time_scaled.values[:MAX_LAG + 1]     # the same lags in units of 1/ω_m
    A = sde_com.resonator.operating_points(sde_com.resonator.Device(), detuning=0.75)[0].drift   # rad/s
    iq = list(trace.quadrature.values).index("q")
    acf_ref = np.array([(expm(A * tau) @ cov.values)[iq, iq] for tau in lag_s])

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    t = ds.time_scaled.values                     # ω_m·t
    for k in range(3):
        ax1.plot(t, trace.sel(quadrature="q").isel(trajectory=k), lw=0.8, label=f"trajectory {k}")
    ax1.set_xlim(0, 50)
    ax1.set_xlabel(r"time $t$ (units of $1/\omega_m$)")
    ax1.set_ylabel(r"mechanical position $q$ (vacuum variance 1/2)")
    ax1.set_title("Recorded traces", fontsize=9)
    ax1.legend(fontsize=7, loc="upper right")

    x = np.arange(trace.sizes["quadrature"])
    ax2.errorbar(x, variance, yerr=variance_err, fmt="o", capsize=3, label=f"traces, {n} trajectories ± 1σ")
    ax2.plot(x, expected, "k_", ms=18, label="Lyapunov V (diagonal)")
    ax2.set_xticks(x, trace.quadrature.values)
    ax2.set_ylabel(r"variance $\langle u_k^2\rangle$ (vacuum = 1/2)")
    ax2.set_title(f"Variances: max |z| = {float(abs(zscore).max()):.2f}", fontsize=9)
    ax2.legend(fontsize=7)

    ax3.fill_between(lag, acf - acf_err, acf + acf_err, alpha=0.3, label="traces ± 1σ")
    ax3.plot(lag, acf_ref, "k-", lw=1, label=r"$(e^{A\tau}V)_{qq}$")
    ax3.axhline(0.0, color="gray", lw=0.5)
    ax3.set_xlabel(r"lag $\tau$ (units of $1/\omega_m$)")
    ax3.set_ylabel(r"$\langle q(t+\tau)\,q(t)\rangle$ (vacuum variance 1/2)")
    ax3.set_title("Autocorrelation of q", fontsize=9)
    ax3.legend(fontsize=7)
    png = outdir / "traces.png"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)

    return dict(dataset=path, variance=variance.values, variance_err=variance_err.values,
                expected=expected.values, zscore=zscore.values, trajectories=n,
                lag=lag, acf=acf, acf_err=acf_err, acf_ref=acf_ref, figure=png)


if __name__ == "__main__":
    r = main(sys.argv[1] if len(sys.argv) > 1 else ".")
    for name, v, e, x in zip("xU yU xV yV q p".split(), r["variance"], r["variance_err"], r["expected"],
                             strict=True):
        print(f"<{name}²> = {v:.4f} ± {e:.4f}   (V: {x:.4f})")
    z_acf = (r["acf"] - r["acf_ref"]) / r["acf_err"]
    print(f"autocorrelation of q: max |z| = {np.abs(z_acf).max():.2f} over {len(z_acf)} lags")
