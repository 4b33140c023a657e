"""Benchmark of the steady-state chain against a plain scipy loop, measured in one run (ratios, medians)."""

from __future__ import annotations

import functools
import time

import numpy as np
import scipy.linalg

from sde_com.physics.resonator.device import Device
from sde_com.physics.resonator.points import operating_points
from sde_com.physics.system import get_system
from sde_com.results.sweep import sweep


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

    The time-to-target comes from a pilot run per scheme: its standard error falls as 1/√(trajectory-steps),
    so the steps needed are the pilot's × (pilot error / target)², and their time is steps / measured rate.
    """
    from sde_com.kernels import ensemble as kernels
    from sde_com.physics.linear import (
        discrete_stationary_covariance,
        euler_maruyama_step,
        lyapunov_covariance_reference,
    )
    from sde_com.simulation.simulate import SimulationSettings, simulate_point, step_maps

    device = Device()
    point = operating_points(device, 0.75)[0]
    thermal = get_system("spinning_resonator").thermal_covariance({})  # of the default device, as ``device``
    A, D = point.drift / device.omega_m, point.diffusion / device.omega_m
    u0 = np.zeros((n_traj, 6))
    no_snaps = np.zeros(0, dtype=np.int64)
    maps = {m: [np.ascontiguousarray(x) for x in step_maps(A, D, 0.01, m)] for m in ("em", "exact")}
    for F, L in maps.values():
        kernels.run_ensemble(F, L, u0[:2], 1, 0, 4, 0, no_snaps, 0, 1)  # compile / load
    times = {"em": [], "exact": []}
    for _ in range(repeat):  # alternate the two so that drifts in machine speed hit both alike
        for m, (F, L) in maps.items():
            t0 = time.perf_counter()
            kernels.run_ensemble(F, L, u0, 1, 0, n_steps, 0, no_snaps, 0, 1)
            times[m].append(time.perf_counter() - t0)
    rates = {m: n_traj * n_steps / float(np.median(t)) for m, t in times.items()}
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
        out = simulate_point(point.drift, point.diffusion, device.omega_m, thermal, s)
        rel_err = np.linalg.norm(out["cov_sim_err"]) / np.linalg.norm(V)
        # the standard error falls as 1/√(steps): steps needed for the target, at the kernel's measured rate
        steps = pilot_trajectories * s.n_steps * (rel_err / target) ** 2
        walls[method] = dict(dt=dt, pilot_steps=pilot_trajectories * s.n_steps, pilot_rel_err=rel_err,
                             steps_to_target=steps, wall_to_target=steps / rates[method])
    return dict(rates=rates, em_over_numpy=rates["em"] / rates["numpy"], em_over_exact=rates["em"] / rates["exact"],
                time_to_target=walls, target=target,
                exact_speedup_to_target=walls["em"]["wall_to_target"] / walls["exact"]["wall_to_target"])


def benchmark_dask(workers: int = 2, trajectories: int = 256, duration: float = 60_000.0,
                   tiny_units: int = 200) -> dict:
    """In one run: a time-domain ensemble (Fig. 2 peak, exact scheme, default unit size) in-process (numba
    threads) against a LocalCluster of ``workers`` single-threaded processes, whole CLI path included
    (checkpoints, merge, file); and the overhead per unit from ``tiny_units`` units of almost no work."""
    import tempfile
    from pathlib import Path

    from sde_com.runs.engine import connect, execute, plan
    from sde_com.runs.scenario import parse_scenario

    text = (f"[model]\ndetuning = 0.75\n[simulate]\nmethod = \"exact\"\ndt = 0.05\nduration = {duration}\n"
            f"trajectories = {trajectories}\nseed = 1\n")
    tiny = f"[model]\ndetuning = 0.75\n[simulate]\ndt = 0.5\nduration = 5.0\ntrajectories = {tiny_units}\nchunk = 1\n"
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        def timed(name, scenario_text, **kw):
            t0 = time.perf_counter()
            execute(parse_scenario(scenario_text), Path(tmp) / f"{name}.nc", quiet=True, **kw)
            out[name] = time.perf_counter() - t0

        timed("warm", tiny)  # compile / load the kernels in this process
        timed("in_process", text)
        timed("in_process_tiny", tiny)
        scenario = parse_scenario(text)
        units = plan(scenario)
        t0 = time.perf_counter()  # the start-up a run pays: the cluster, then every worker loading the kernels
        client = connect(workers, None, scenario.kind.warm_up(scenario, units, scenario.kind.models(scenario, units)))
        out["cluster_start"] = time.perf_counter() - t0
        client.close()
        client.cluster.close()
        timed("dask", text, workers=workers)
        timed("dask_tiny", tiny, workers=workers)
    n_units = len(units)
    tiny_units = len(plan(parse_scenario(tiny)))
    out.update(workers=workers, units=n_units, trajectory_steps=trajectories * scenario.simulation.n_steps,
               efficiency=out["in_process"] / out["dask"],
               efficiency_after_start=out["in_process"] / (out["dask"] - out["cluster_start"]),
               overhead_per_unit_dask=(out["dask_tiny"] - out["cluster_start"]) / tiny_units,
               overhead_per_unit_in_process=out["in_process_tiny"] / tiny_units,
               excess_over_start=out["dask"] - out["in_process"] - out["cluster_start"])
    out["overhead_fraction"] = out["overhead_per_unit_dask"] * n_units / max(out["dask"] - out["cluster_start"], 1e-9)
    return out


def _random_stable_system(n_modes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, D) of a random stable N-mode system in units of ω_ref: A = M − (max Re λ(M) + 0.1) I, D = B Bᵀ + I."""
    rng = np.random.default_rng(seed)
    d = 2 * n_modes
    M = rng.standard_normal((d, d)) / np.sqrt(d)
    B = rng.standard_normal((d, d)) / np.sqrt(d)
    return M - (np.linalg.eigvals(M).real.max() + 0.1) * np.eye(d), B @ B.T + np.eye(d)


def benchmark_modes(modes=(1, 2, 3, 4, 5, 6, 10, 20), n_traj: int = 2048, steps_per_mode: int = 20_000,
                    repeat: int = 5, gemm_size: int = 1024) -> dict:
    """Kernel throughput (trajectory-steps/s) of the exact-discretization stepper for N-mode systems, and for
    N ≥ 10 its GFLOP/s against one core's measured peak (BLAS DGEMM, pinned to one thread by ``pinned``) and
    against BLAS stepping the same ensemble as one batched matrix product per step (U ← U Fᵀ + Ξ Lᵀ).

    Flops counted: the step's two 2N × 2N matrix–vector products, 4(2N)² per trajectory-step (the normal draws
    are not counted). The kernel runs on every core numba is given (``NUMBA_NUM_THREADS``); the rates are per
    run, GFLOP/s per core as well. The stepping is timed alone (the burn-in spans the run: no moment sums), and
    with the moment sums of a steady-state average (``with_moments``). Medians of ``repeat``.
    """
    import numba

    from sde_com.kernels import ensemble as kernels
    from sde_com.simulation.simulate import step_maps

    cores = numba.get_num_threads()
    a = np.random.default_rng(0).standard_normal((gemm_size, gemm_size))
    peak = 2 * gemm_size**3 / _median_time(lambda: a @ a, repeat) / 1e9  # GFLOP/s of one core (BLAS pinned)
    no_snaps = np.zeros(0, dtype=np.int64)
    out = {}
    for n in modes:
        d = 2 * n
        A, D = _random_stable_system(n, seed=n)
        F, L = (np.ascontiguousarray(x) for x in step_maps(A, D, 0.05, "exact"))
        u0 = np.zeros((n_traj, d))
        n_steps = max(200, steps_per_mode // n)
        kernels.run_ensemble(F, L, u0[:2], 1, 0, 4, 4, no_snaps, 0, 1)  # compile / load
        kernels.run_ensemble(F, L, u0[:2], 1, 0, 4, 0, no_snaps, 0, 1)
        bare, moments = (_median_time(functools.partial(kernels.run_ensemble, F, L, u0, 1, 0, n_steps, burn_in,
                                                        no_snaps, 0, 1), repeat) for burn_in in (n_steps, 0))
        rate = n_traj * n_steps / bare
        row = dict(modes=n, dimension=d, steps=n_steps, rate=rate, with_moments=n_traj * n_steps / moments,
                   gflops=rate * 4 * d * d / 1e9)
        row["gflops_per_core"] = row["gflops"] / cores
        if n >= 10:
            U, Xi = np.zeros((n_traj, d)), np.random.default_rng(1).standard_normal((n_traj, d))
            blas_steps = max(20, n_steps // 10)

            def blas_loop(U=U, Xi=Xi, F=F, L=L, k=blas_steps):
                for _ in range(k):
                    U = U @ F.T + Xi @ L.T
            blas_rate = n_traj * blas_steps / _median_time(blas_loop, repeat)
            row.update(blas_rate=blas_rate, blas_gflops=blas_rate * 4 * d * d / 1e9, over_peak=row["gflops_per_core"]
                       / peak)
        out[str(n)] = row
    return dict(cores=cores, peak_gflops=peak, n_traj=n_traj, repeat=repeat, modes=out)


def benchmark_conditional(n_traj: int = 1000, n_steps: int = 2000, repeat: int = 3, qutip_trajectories: int = 2
                          ) -> dict:
    """Trajectory-steps per second of the conditional stepper (state, record and Kalman filter:
    ``kernels.filtering.conditional_chunk``) against the unconditional exact stepper (``run_ensemble``) on the
    same system, the single cavity watched by homodyne at η = 0.8 (d = 4, one channel), alternating the two;
    and, where QuTiP is installed, the time per trajectory of its ``smesolve`` against sde_com's on a watched
    parametric amplifier (12 Fock levels, 12/κ at dt = 0.004, as ``tests/test_measurement.py`` compares them)."""
    import math

    from sde_com.kernels import ensemble as kernels
    from sde_com.physics.linear import psd_sqrt
    from sde_com.physics.measurement import filter_gains
    from sde_com.simulation.conditional import _model, run_conditional_unit
    from sde_com.simulation.simulate import step_maps

    system = get_system("single_cavity")
    params = dict(detuning=1.0, detuning_kind="effective")
    model = _model([{"mode": "a", "efficiency": 0.8}], system, params, 0.01, "steady", 0)
    Phi, H, Q, V0 = model["Phi"], model["H"], model["Q"], model["V0"]
    K, Om, _ = filter_gains(Phi, H, Q, V0, n_steps)
    W = np.array([np.linalg.inv(psd_sqrt(o)) for o in Om])
    d = Phi.shape[0]
    A, D = (b / model["omega_ref"] for b in (system.branches(params)[0].drift, system.branches(params)[0].diffusion))
    F, L = (np.ascontiguousarray(x) for x in step_maps(A, D, 0.01, "exact"))
    u0 = np.zeros((n_traj, d))
    no_snaps = np.zeros(0, dtype=np.int64)

    prepared = dict(Phi=Phi, H=H, L=psd_sqrt(Q), K=K, W=W, V0_factor=psd_sqrt(V0), n_steps=n_steps,
                    stride=n_steps, saved=np.array([0, n_steps]), Fu=model["Fu"], Fy=model["Fy"], closed=False)

    def conditional(n):
        run_conditional_unit(prepared, 1, 0, n, 0)

    conditional(2)  # compile / load
    kernels.run_ensemble(F, L, u0[:2], 1, 0, 4, 0, no_snaps, 0, 1)
    times = {"conditional": [], "exact": []}
    for _ in range(repeat):  # alternated, so that drifts in machine speed hit both alike
        t0 = time.perf_counter()
        conditional(n_traj)
        times["conditional"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        kernels.run_ensemble(F, L, u0, 1, 0, n_steps, 0, no_snaps, 0, 1)
        times["exact"].append(time.perf_counter() - t0)
    rates = {k: n_traj * n_steps / float(np.median(t)) for k, t in times.items()}
    out = dict(rates=rates, cost_ratio=rates["exact"] / rates["conditional"], n_traj=n_traj, n_steps=n_steps)
    try:
        import qutip
    except ImportError:
        return out
    from sde_com.physics.hamiltonian import HamiltonianSystem
    from sde_com.simulation.conditional import conditional_simulate

    kappa, chi, eta, levels = 1.0, 0.2, 0.6, 12
    a = qutip.destroy(levels)
    x = (a + a.dag()) / math.sqrt(2)
    t0 = time.perf_counter()
    qutip.smesolve(1j * chi * (a.dag() ** 2 - a ** 2) / 2, qutip.basis(levels, 0), np.linspace(0, 12, 121),
                   c_ops=[math.sqrt((1 - eta) * kappa) * a], sc_ops=[math.sqrt(eta * kappa) * a], e_ops=[x, x * x],
                   ntraj=qutip_trajectories, seeds=1, options={"dt": 0.004, "method": "platen",
                                                                "progress_bar": False})
    qutip_s = (time.perf_counter() - t0) / qutip_trajectories
    amplifier = HamiltonianSystem(["a"], "1j*chi*(dag(a)**2 - a**2)/2",
                                  [dict(kind="thermal", mode="a", rate=kappa, port=True)], dict(chi=chi))
    watch = dict(dt=0.004, duration=12.0, save_every=0.1, initial="zero", system=amplifier)
    conditional_simulate([{"mode": "a", "efficiency": eta}], trajectories=2, **watch)  # compile / load
    t0 = time.perf_counter()
    conditional_simulate([{"mode": "a", "efficiency": eta}], trajectories=200, **watch)
    sde_s = (time.perf_counter() - t0) / 200
    out.update(qutip_s_per_trajectory=qutip_s, sde_com_s_per_trajectory=sde_s, qutip_over_sde_com=qutip_s / sde_s)
    return out
