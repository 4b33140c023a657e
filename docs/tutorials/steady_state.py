"""Validating a steady state: an exact-scheme ensemble against the Lyapunov V (z-scores), and an
Euler–Maruyama time-step study (E_N bias against dt).

Run it as ``python docs/tutorials/steady_state.py [OUTDIR]``; it writes ``steady_state.png``.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import sde_com

QUADRATURES = ["xU", "yU", "xV", "yV", "q", "p"]


def main(outdir="."):
    # 1. Exact discretization at the Fig. 2 peak: V from per-trajectory time averages after a burn-in,
    #    errors from the spread over independent trajectories, z-scores against the Lyapunov V.
    exact = sde_com.SimulationSettings(method="exact", dt=0.5, burn_in=50.0, duration=2000.0,
                                       trajectories=64, seed=1, initial="steady")
    ds = sde_com.simulate(exact, detuning=0.75).isel(branch=0)
    z = ds.zscore.values                      # (cov_sim - cov) / cov_sim_err, 6 x 6

    # 2. Euler–Maruyama at several dt, same seed at each (common random numbers). EM samples the
    #    discrete-Lyapunov V_dt (logneg_ref), not V (logneg): its E_N is biased by O(dt).
    em = sde_com.SimulationSettings(method="em", dt=0.01, burn_in=50.0, duration=300.0,
                                    trajectories=256, seed=3, initial="steady")
    dts = [0.0025, 0.005, 0.01, 0.02, 0.04]
    st = sde_com.simulate_time_steps(em, dts, detuning=0.75).isel(branch=0)
    steady = float(st.logneg)
    bias_sim = st.logneg_sim.values - steady
    bias_err = st.logneg_sim_err.values
    bias_ref = st.logneg_ref.values - steady  # exact bias of the scheme, from V_dt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    im = ax1.imshow(z, cmap="RdBu_r", vmin=-4, vmax=4)
    ax1.set_xticks(range(6), QUADRATURES)
    ax1.set_yticks(range(6), QUADRATURES)
    for i in range(6):
        for j in range(6):
            ax1.text(j, i, f"{z[i, j]:.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax1, label="z-score (standard errors)")
    ax1.set_title(f"Exact scheme, $\\omega_m dt$ = {exact.dt:g}: "
                  f"E_N = {float(ds.logneg_sim):.4f} ± {float(ds.logneg_sim_err):.4f}\n"
                  f"Lyapunov E_N = {float(ds.logneg):.4f}, max|z| = {float(ds.zscore_max):.2f}", fontsize=9)

    ax2.errorbar(dts, bias_sim, yerr=bias_err, fmt="o", capsize=3, label="EM ensemble ± 1σ")
    ax2.plot([0.0, *dts], [0.0, *bias_ref], "k-", lw=1, label=r"$E_N(V_{dt}) - E_N(V)$ (exact, no noise)")
    ax2.axhline(0.0, color="gray", lw=0.5)
    ax2.set_xlabel(r"time step $dt$ (units of $1/\omega_m$)")
    ax2.set_ylabel(r"$E_N - E_N(V)$ (dimensionless)")
    ax2.set_title("Euler–Maruyama time-step study", fontsize=9)
    ax2.legend(fontsize=8)
    png = Path(outdir) / "steady_state.png"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)

    # Order of the bias: slope of log|bias| against log dt, from the exact V_dt (no noise).
    slope = float(np.polyfit(np.log(dts), np.log(np.abs(bias_ref)), 1)[0])
    return dict(zscore=z, zscore_max=float(ds.zscore_max), trajectories=exact.trajectories,
                logneg_sim=float(ds.logneg_sim), logneg_sim_err=float(ds.logneg_sim_err), logneg=float(ds.logneg),
                dt=np.array(dts), em_zscore_max=st.zscore_max.values, em_trajectories=em.trajectories,
                bias_sim=bias_sim, bias_err=bias_err, bias_ref=bias_ref, bias_order=slope, figure=png)


if __name__ == "__main__":
    r = main(sys.argv[1] if len(sys.argv) > 1 else ".")
    print(f"exact: E_N = {r['logneg_sim']:.4f} ± {r['logneg_sim_err']:.4f} vs {r['logneg']:.4f}, "
          f"max|z| = {r['zscore_max']:.2f}")
    for dt, b, e, br in zip(r["dt"], r["bias_sim"], r["bias_err"], r["bias_ref"], strict=True):
        print(f"EM dt = {dt:g}: bias {b:+.4f} ± {e:.4f} (V_dt: {br:+.4f})")
    print(f"EM bias order in dt: {r['bias_order']:.2f}; max|z| against V_dt: {r['em_zscore_max'].max():.2f}")
