"""Benchmark of the steady-state chain against a plain scipy loop, measured in one run (ratios, medians)."""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg

from .device import Device
from .model import operating_points
from .sweep import sweep


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def benchmark_steady_chain(points: int = 200_000, baseline_points: int = 2_000, repeat: int = 5) -> dict:
    """Operating points per second of the full chain (branches → A → stability → V → E_N, all branches,
    three pairs' E_N) against a loop calling scipy.linalg.solve_continuous_lyapunov once per point.

    The baseline gets its A and D precomputed outside the timing, so it times the Lyapunov solves alone:
    the ratio is a lower bound on the speed-up over a per-point scipy loop.
    """
    device = Device()
    detuning = np.linspace(-1.0, 3.0, points)
    sweep(detuning=detuning[:16], store_cov=False, revival=False)  # compile / load the numba cache
    t_chain = _median_time(lambda: sweep(detuning=detuning, store_cov=False, revival=False), repeat)

    models = []
    for x in np.linspace(-1.0, 3.0, baseline_points):
        for p in operating_points(device, float(x)):
            if p.stable:
                models.append((p.drift / device.omega_m, -p.diffusion / device.omega_m))
    models = models[:baseline_points]

    def loop():
        for A, Q in models:
            scipy.linalg.solve_continuous_lyapunov(A, Q)

    t_loop = _median_time(loop, repeat)
    per_chain = t_chain / points
    per_loop = t_loop / len(models)
    return dict(points=points, baseline_points=len(models), repeat=repeat,
                chain_us_per_point=per_chain * 1e6, scipy_loop_us_per_point=per_loop * 1e6,
                chain_points_per_s=1.0 / per_chain, speedup=per_loop / per_chain)
