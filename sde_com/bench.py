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


def benchmark_sde(n_traj: int = 2000, n_steps: int = 2000, repeat: int = 3, pilot_trajectories: int = 64,
                  pilot_duration: float = 250.0, target: float = 0.01) -> dict:
    """Trajectory-steps per second of the EM and exact kernels against a batched NumPy EM loop, and the
    wall time to estimate V at the Fig. 2 peak to ``target`` (relative Frobenius standard error) with each
    scheme — EM at the largest dt of a halving ladder whose stationary bias ‖V_dt − V‖/‖V‖ is below target.

    The time-to-target comes from a pilot run per scheme: its standard error falls as 1/√(simulated time),
    so the wall time needed is the pilot's wall time × (pilot error / target)².
    """
    from . import kernels
    from .linear import discrete_stationary_covariance, euler_maruyama_step, lyapunov_covariance_reference
    from .simulate import SimulationSettings, simulate_point, step_maps

    device = Device()
    point = operating_points(device, 0.75)[0]
    A, D = point.drift / device.omega_m, point.diffusion / device.omega_m
    u0 = np.zeros((n_traj, 6))
    no_snaps = np.zeros(0, dtype=np.int64)
    rates = {}
    for method in ("em", "exact"):
        F, L = (np.ascontiguousarray(m) for m in step_maps(A, D, 0.01, method))
        kernels.run_ensemble(F, L, u0[:2], 1, 0, 4, 0, no_snaps, 0, 1)  # compile / load
        t = _median_time(lambda F=F, L=L: kernels.run_ensemble(F, L, u0, 1, 0, n_steps, 0, no_snaps, 0, 1), repeat)
        rates[method] = n_traj * n_steps / t
    F, L = euler_maruyama_step(A, D, 0.01)
    b = np.sqrt(np.diag(L @ L.T))
    rng = np.random.default_rng(0)
    numpy_steps = max(1, n_steps // 4)

    def numpy_em():
        u = np.zeros((n_traj, 6))
        for _ in range(numpy_steps):
            u = u @ F.T + rng.standard_normal((n_traj, 6)) * b

    rates["numpy"] = n_traj * numpy_steps / _median_time(numpy_em, repeat)

    V = lyapunov_covariance_reference(A, D)
    dt_em = 0.01
    while np.linalg.norm(discrete_stationary_covariance(*euler_maruyama_step(A, D, dt_em)) - V) / np.linalg.norm(V) \
            >= target:
        dt_em /= 2
    walls = {}
    for method, dt in (("em", dt_em), ("exact", 1.0)):
        s = SimulationSettings(method=method, dt=dt, burn_in=50.0, duration=pilot_duration,
                               trajectories=pilot_trajectories, seed=1)
        simulate_point(point.drift, point.diffusion, device.omega_m, device.n_thermal,
                       SimulationSettings(method=method, dt=dt, duration=10 * dt, trajectories=2))
        t0 = time.perf_counter()
        out = simulate_point(point.drift, point.diffusion, device.omega_m, device.n_thermal, s)
        wall = time.perf_counter() - t0
        rel_err = np.linalg.norm(out["cov_sim_err"]) / np.linalg.norm(V)
        walls[method] = dict(dt=dt, pilot_wall=wall, pilot_rel_err=rel_err,
                             wall_to_target=wall * (rel_err / target) ** 2)
    return dict(rates=rates, em_over_numpy=rates["em"] / rates["numpy"], em_over_exact=rates["em"] / rates["exact"],
                time_to_target=walls, target=target,
                exact_speedup_to_target=walls["em"]["wall_to_target"] / walls["exact"]["wall_to_target"])
