"""Continuous measurement of output ports: the record, the conditional (filtered) state and the Kalman filter.

The measurement model (docs/physics.md, *Continuous measurement*; Wiseman and Milburn, *Quantum Measurement and
Control*, ch. 6; Doherty and Jacobs, Phys. Rev. A 60, 2700 (1999)), in this project's convention: an output
port of mode k at the amplitude decay rate κ into it, a_out = √(2κ) a_k − a_in (``physics.spectra``), whose
input noise enters the mode's quadratures as √κ dB (dB = √2 (x_in, p_in) dt, E[dB dBᵀ] = I dt: D = κ on each).
A homodyne detector of efficiency η at the local-oscillator phase θ records

    dY = 2√(ηκ) (cos θ x_k + sin θ p_k) dt + dW,   E[dW²] = dt,                                  (M1)

dW = −√η (cos θ dB_x + sin θ dB_p) + √(1 − η) dV (dV: the vacuum the losses add), so the record's noise is
correlated with the system's: E[dW_sys dW] = Γ dt with Γ = −√(ηκ) (cos θ, sin θ) on mode k's rows.      (M2)

A heterodyne detector is two homodynes at θ and θ + π/2, each of efficiency η/2. Detectors on one port split
its light: their efficiencies add up to at most 1, and their noises are independent (a beam splitter's
outputs of vacuum inputs are), so the channels' noise covariance is R = I. With C (channels × 2N) the rows
2√(ηκ)(cos θ, sin θ) on mode k, the conditional mean x̂ = E[u | record] obeys the Kalman–Bucy filter

    dx̂ = A x̂ dt + K (dY − C x̂ dt),   K = V_c Cᵀ + Γ,                                            (M3)
    dV_c/dt = A V_c + V_c Aᵀ + D − (V_c Cᵀ + Γ)(V_c Cᵀ + Γ)ᵀ,                                     (M4)

and the conditional steady state is the stabilising solution of (M4) = 0 (an algebraic Riccati equation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sde_com.errors import NumericalError, UserError
from sde_com.spec import Key, make_table

SCHEMES = ("homodyne", "heterodyne")
MEASURE = make_table(
    "measure", "One detector on an output port (an array of tables: `[[measure]]`, one per detector). With a "
               "steady-state run it adds the conditional state (the stabilising Riccati solution), the Kalman "
               "gain and the Gaussian measures; see Physics: continuous measurement.",
    Key("mode", "string", "the detected mode: one with an output port (the resonator's U or V, the single "
                          "cavity's a, a [system] `outputs` mode or `port` dissipator's)"),
    Key("scheme", "string", "'homodyne' (one quadrature, at theta) or 'heterodyne' (two homodynes at theta and "
                            "theta + π/2, each of half the efficiency)", default="homodyne", choices=SCHEMES),
    Key("theta", "number", "local-oscillator phase θ: the measured quadrature cos θ x + sin θ p", "rad", 0.0,
        minimum=-1e6, maximum=1e6),
    Key("efficiency", "number", "detection efficiency η (the fraction of the port's light detected); detectors "
                                "on one port together take at most all of it", "1", 1.0, minimum=0.0,
        exclusive_minimum=True, maximum=1.0),
    array=True,
)


@dataclass(frozen=True)
class Channel:
    """One record channel: the homodyne of ``mode`` (index) at phase ``theta`` (rad), efficiency ``efficiency``."""

    mode: int
    theta: float
    efficiency: float


def channels(measures: Sequence[Mapping], modes: Sequence[str]) -> list[Channel]:
    """The record channels of ``[[measure]]`` detectors (a heterodyne one gives two, Eq. (M1) and below):
    each a homodyne of its mode; UserError naming the detector for a mode the system lacks."""
    out = []
    for i, m in enumerate(measures):
        if m["mode"] not in modes:
            raise UserError(f"measure[{i}].mode must be one of the modes {list(modes)}, got {m['mode']!r}")
        k, theta, eta = list(modes).index(m["mode"]), float(m.get("theta", 0.0)), float(m.get("efficiency", 1.0))
        if m.get("scheme", "homodyne") == "heterodyne":
            out += [Channel(k, theta, eta / 2), Channel(k, theta + math.pi / 2, eta / 2)]
        else:
            out.append(Channel(k, theta, eta))
    return out


def check_measures(measures: Sequence[Mapping], modes: Sequence[str], ports: Mapping[str, float]) -> list[dict]:
    """``[[measure]]`` detectors from Python (the scenario's are checked by its schema first): each a table of
    ``MEASURE``'s keys, with their defaults filled in, on ports with light to spare (``check_ports``)."""
    from sde_com.spec import check_value

    if isinstance(measures, Mapping) or not isinstance(measures, Sequence) or not measures:
        raise UserError(f"measures must be a non-empty list of detectors (tables of {list(MEASURE.keys)}), got "
                        f"{measures!r}")
    out = []
    for i, m in enumerate(measures):
        unknown = sorted(set(m) - set(MEASURE.keys)) if isinstance(m, Mapping) else None
        if unknown is None or unknown or "mode" not in m:
            raise UserError(f"measure[{i}] must be a table with a mode and keys among {list(MEASURE.keys)}, got {m!r}")
        for k, v in m.items():
            check_value(MEASURE.keys[k], v, f"measure[{i}].{k}")
        out.append({k: key.default for k, key in MEASURE.keys.items() if key.default is not None} | dict(m))
    check_ports(out, modes, ports)
    return out


def check_ports(measures: Sequence[Mapping], modes: Sequence[str], ports: Mapping[str, float]) -> None:
    """Every detector on a mode with an output port, and the detectors of one port within its light (their
    efficiencies add up to at most 1); UserError naming the detector or the port."""
    used: dict[str, float] = {}
    for i, m in enumerate(measures):
        if m["mode"] not in ports:
            raise UserError(f"measure[{i}].mode = {m['mode']!r} has no output port; the ports are "
                            f"{sorted(ports) or 'none'}")
        used[m["mode"]] = used.get(m["mode"], 0.0) + float(m.get("efficiency", 1.0))
    for mode, eta in used.items():
        if eta > 1 + 1e-12:
            raise UserError(f"[[measure]] detectors on port {mode!r} take efficiencies adding up to {eta:g}: together "
                            "they detect at most all of its light (≤ 1)")


def record_from_traces(trace: np.ndarray, noise: np.ndarray, kappa: float, dt: float, mode: str | int = 0,
                       theta: float = 0.0) -> np.ndarray:
    """The record (M1) of a perfect (η = 1) homodyne at phase θ of the port of ``mode`` ('U'/'V' of the resonator,
    or a mode index), from Euler–Maruyama traces: ΔY_n = 2√κ (cos θ x + sin θ p)(t_n) dt + dW_n with
    dW_n = −(cos θ dB_x + sin θ dB_p) the port's input noise over step n (M2): the recorded noise of state n + 1
    is √κ dB on the mode's quadratures when the port carries all of the mode's noise (D = κ there;
    ``detection.check_port_carries_the_noise``). This is the record a ``[[measure]]`` run writes, in the same
    normalisation (E[dW²] = dt; ΔY/(√2 dt) is the bin average of the output quadrature X_θ,out of
    a_out = √(2κ) a − a_in). ``kappa`` and ``dt`` in units of ω_ref and 1/ω_ref; exact for traces recorded at
    every step. trace, noise: (..., time, 2N) → (..., time − 1, 1): one channel."""
    from sde_com.physics.spectra import mode_rows

    rx, ry = mode_rows(trace.shape[-1], mode)
    if not (kappa > 0 and dt > 0):
        raise UserError("kappa and dt must be > 0")
    c, s = math.cos(theta), math.sin(theta)
    x = c * trace[..., :-1, rx] + s * trace[..., :-1, ry]
    dw = -(c * noise[..., 1:, rx] + s * noise[..., 1:, ry]) / math.sqrt(kappa)
    return (2.0 * math.sqrt(kappa) * x * dt + dw)[..., None]


def measurement_matrices(chans: Sequence[Channel], ports: Sequence[float], n_modes: int):
    """C (channels × 2N) and Γ (2N × channels) of Eqs. (M1)–(M2); ``ports``: each channel's amplitude decay
    rate κ into its port, rad/s."""
    C, G = np.zeros((len(chans), 2 * n_modes)), np.zeros((2 * n_modes, len(chans)))
    for j, (ch, kappa) in enumerate(zip(chans, ports, strict=True)):
        direction = np.array([math.cos(ch.theta), math.sin(ch.theta)])
        rows = slice(2 * ch.mode, 2 * ch.mode + 2)
        C[j, rows] = 2 * math.sqrt(ch.efficiency * kappa) * direction
        G[rows, j] = -math.sqrt(ch.efficiency * kappa) * direction
    return C, G


RICCATI_RESIDUAL = 1e-8  # of the equation's scale (max of |AV|, |D|, |KKᵀ|): a solution well beyond rounding


def conditional_covariance(A: np.ndarray, D: np.ndarray, C: np.ndarray, G: np.ndarray,
                           scale: float = 1.0) -> np.ndarray:
    """The stabilising solution V_c of the algebraic Riccati equation (M4) = 0 (scipy's Schur method on the dual
    control problem), checked: symmetric, positive semidefinite, A − K C stable and the residual below
    ``RICCATI_RESIDUAL`` of the equation's scale. ``scale``: a rate (ω_ref) the matrices are divided by while
    solving (the same V_c, better-scaled matrices). NumericalError naming the failure where it has none."""
    from scipy.linalg import solve_continuous_are

    a, d, c, g = A / scale, D / scale, C / math.sqrt(scale), G / math.sqrt(scale)
    try:
        V = solve_continuous_are(a.T, c.T, d, np.eye(c.shape[0]), s=g)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise NumericalError(f"the Riccati equation of the measured system has no stabilising solution ({exc}): "
                             "an unstable mode the detectors do not see, or noise it cannot shed") from None
    V = 0.5 * (V + V.T)
    K = V @ c.T + g
    residual = a @ V + V @ a.T + d - K @ K.T
    size = max(np.abs(a @ V).max(), np.abs(d).max(), np.abs(K @ K.T).max(), 1e-300)
    if not np.all(np.isfinite(V)) or np.abs(residual).max() > RICCATI_RESIDUAL * size:
        raise NumericalError(f"the Riccati solution's residual is {np.abs(residual).max() / size:.2g} of its scale "
                             f"(> {RICCATI_RESIDUAL:g}): no reliable conditional state")
    if np.linalg.eigvals(a - K @ c).real.max() >= 0:
        raise NumericalError("the Riccati solution does not stabilise the filter (A − K C has an eigenvalue with "
                             "Re λ ≥ 0): the detectors do not see an unstable mode")
    return V


def kalman_gain(V: np.ndarray, C: np.ndarray, G: np.ndarray) -> np.ndarray:
    """K = V_c Cᵀ + Γ of Eq. (M3), 2N × channels (rad/s)^½ per unit record."""
    return V @ C.T + G


def riccati_rate(V: np.ndarray, A: np.ndarray, D: np.ndarray, C: np.ndarray, G: np.ndarray) -> np.ndarray:
    """dV_c/dt of Eq. (M4)."""
    K = V @ C.T + G
    return A @ V + V @ A.T + D - K @ K.T


RICCATI_RTOL = 1e-10  # of the Riccati path's integrator (DOP853): far below any ensemble's error bars


def riccati_path(A: np.ndarray, D: np.ndarray, C: np.ndarray, G: np.ndarray, V0: np.ndarray,
                 times: np.ndarray) -> np.ndarray:
    """V_c(t) of Eq. (M4) from V_c(0) = V0 at ``times`` (ascending, from 0; in the units of 1/A), integrated by
    DOP853 at relative tolerance RICCATI_RTOL: the continuous filter's covariance, which the discrete one
    (``filter_gains``) tends to as dt → 0. Returns (len(times), d, d)."""
    from scipy.integrate import solve_ivp

    d = A.shape[0]
    times = np.asarray(times, dtype=float)
    scale = max(1.0, float(np.abs(V0).max()))
    sol = solve_ivp(lambda _, v: riccati_rate(v.reshape(d, d), A, D, C, G).ravel(), (0.0, float(times[-1])),
                    np.asarray(V0, dtype=float).ravel(), method="DOP853", t_eval=times, rtol=RICCATI_RTOL,
                    atol=RICCATI_RTOL * scale)
    if not sol.success:
        raise NumericalError(f"the Riccati equation (M4) could not be integrated: {sol.message}")
    V = sol.y.T.reshape(-1, d, d)
    return 0.5 * (V + V.transpose(0, 2, 1))


# The record over a time step, exactly: the discrete Kalman filter -------------------------------------------


def record_step(A: np.ndarray, D: np.ndarray, C: np.ndarray, G: np.ndarray, dt: float):
    """(Φ, H, Q) of the exact discretization of the system and its record over one step dt (Eq. (M5)):

        u_{n+1} = Φ u_n + w_n,   ΔY_n = Y(t_{n+1}) − Y(t_n) = H u_n + e_n,   Cov[(w_n, e_n)] = Q,

    from the joint process z = (u, Y), dz = [[A, 0], [C, 0]] z dt + noise with diffusion [[D, Γ], [Γᵀ, I]]
    (Eqs. (M1)–(M2)), by Van Loan's method (``physics.linear.noise_covariance``): Φ = e^{A dt},
    H = ∫₀^dt C e^{As} ds, and Q the joint covariance of the step's noises, w correlated with e."""
    from sde_com.physics.linear import noise_covariance

    d, m = A.shape[0], C.shape[0]
    F = np.zeros((d + m, d + m))
    F[:d, :d], F[d:, :d] = A, C
    diffusion = np.block([[D, G], [G.T, np.eye(m)]])
    E, Q = noise_covariance(F, diffusion, dt)
    return E[:d, :d], E[d:, :d], 0.5 * (Q + Q.T)


def record_step_em(A: np.ndarray, D: np.ndarray, C: np.ndarray, G: np.ndarray, dt: float):
    """(Φ, H, Q) of the Euler–Maruyama discretization of the system and its record over one step dt (the
    scheme's counterpart of Eq. (M5)): Φ = I + A dt, H = C dt, Q = dt [[D, Γ], [Γᵀ, I]]."""
    d = A.shape[0]
    Q = dt * np.block([[D, G], [G.T, np.eye(C.shape[0])]])
    return np.eye(d) + A * dt, C * dt, 0.5 * (Q + Q.T)


def filter_gains(Phi: np.ndarray, H: np.ndarray, Q: np.ndarray, P0: np.ndarray, n_steps: int):
    """The discrete Kalman filter of ``record_step``'s model (Eq. (M6)), started from the prior covariance P0:
    gains K_n = (Φ P_n Hᵀ + S) Ω_n⁻¹ with Ω_n = H P_n Hᵀ + R (the innovation's covariance), and
    P_{n+1} = Φ P_n Φᵀ + Q_w − K_n Ω_n K_nᵀ (P_n: the covariance of u_n − x̂_n, x̂_n the estimate of u_n from
    ΔY_0 .. ΔY_{n−1}); exact for the scheme. Once P has settled (within SETTLED of its size of its fixed point:
    rounding; ``_settled``) the gains are those of the last step for every later one, and the arrays stop there:
    returns (K (k, d, m), Ω (k, m, m), P (k + 1, d, d)) with k ≤ n_steps; step n uses index min(n, k − 1)
    (P: min(n, k)), so that a long run keeps k, not n_steps, of them."""
    d = Phi.shape[0]
    Qw, S, R = Q[:d, :d], Q[:d, d:], Q[d:, d:]
    m = R.shape[0]
    size = min(n_steps, 1024)  # grown by doubling: a long record's filter settles long before its end
    K, Om, P = np.empty((size, d, m)), np.empty((size, m, m)), np.empty((size + 1, d, d))
    P[0] = P0
    for n in range(n_steps):
        if n == size:
            size = min(n_steps, 2 * size)
            K, Om, P = (np.concatenate([a, np.empty((size - n, *a.shape[1:]))]) for a in (K, Om, P))
        omega = H @ P[n] @ H.T + R
        gain = np.linalg.solve(omega.T, (Phi @ P[n] @ H.T + S).T).T
        nxt = Phi @ P[n] @ Phi.T + Qw - gain @ omega @ gain.T
        K[n], Om[n], P[n + 1] = gain, omega, 0.5 * (nxt + nxt.T)
        if _settled(P[n], P[n + 1], Phi - gain @ H):
            return K[:n + 1].copy(), Om[:n + 1].copy(), P[:n + 2].copy()
    return K, Om, P


def _settled(P: np.ndarray, nxt: np.ndarray, closed_loop: np.ndarray) -> bool:
    """Whether P is within SETTLED of its fixed point: the distance is the step's change over 1 − ρ², ρ the
    spectral radius of the filter's closed loop Φ − K H (the error of P contracts by ρ² a step), so a slowly
    relaxing entry is not frozen by a small step."""
    change, size = np.abs(nxt - P).max(), np.abs(P).max()
    if change > 1e-9 * size:  # far from it: no eigenvalues needed
        return False
    rho = np.abs(np.linalg.eigvals(closed_loop)).max()
    return rho < 1 and change / (1 - rho**2) <= SETTLED * size


SETTLED = 1e-14  # the filter's P within this of its size of its fixed point: settled (rounding)


def at_step(array: np.ndarray, steps) -> np.ndarray:
    """``filter_gains``' arrays at steps ``steps`` (constant once settled: the last entry beyond them)."""
    return array[np.minimum(np.asarray(steps), array.shape[0] - 1)]
