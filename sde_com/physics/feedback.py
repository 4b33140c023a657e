"""Measurement-based feedback on the filtered state: the loop's force, its gain (LQG or given) and the closed
loop's steady state (Eqs. (F1)–(F4); docs/physics.md, *Feedback*).

A force u_c (F components) enters the equations of motion through the quadratures named in ``force``,

    du = (A u + B u_c) dt + dW_sys,   B (2N × F): column f the unit vector of force f's quadrature,        (F1)

and acts on the Kalman filter's estimate, u_c = −L x̂. With the force known, the filter (M3) is

    dx̂ = (A x̂ + B u_c) dt + K (dY − C x̂ dt),                                                          (F2)

so the estimation error u − x̂ evolves as without the loop (the separation principle: V_c of (M4) and K are
the loop's too), and the estimate obeys dx̂ = (A − B L) x̂ dt + K dI with the innovation dI = dY − C x̂ dt white
of unit intensity. Its steady covariance Σ solves

    (A − B L) Σ + Σ (A − B L)ᵀ + K Kᵀ = 0,                                                             (F3)

and the closed loop's unconditional covariance is V_fb = V_c + Σ (the optimal estimate is uncorrelated with its
error); the force's covariance is L Σ Lᵀ. The linear-quadratic regulator minimises E[uᵀ Q_x u + effort |u_c|²],
Q_x the identity on the target modes' quadratures (their occupations, up to constants):

    Aᵀ S + S A − S B Bᵀ S / effort + Q_x = 0,   L = Bᵀ S / effort.                                     (F4)

Everything here is in the scaled time τ = ω_ref t: A/ω_ref, K/√ω_ref, and the force and L in units of ω_ref
(a gain g on p̂ damps p at the rate g ω_ref). References: Wiseman and Milburn, *Quantum Measurement and
Control*, ch. 6; Doherty and Jacobs, Phys. Rev. A 60, 2700 (1999); Rossi et al., Nature 563, 53 (2018).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sde_com.errors import UserError
from sde_com.spec import Key, make_table

CONTROLS = ("lqg", "gain")
FEEDBACK = make_table(
    "feedback", "Measurement-based feedback on the Kalman filter's estimate (needs `[[measure]]`): a force "
                "u_c = −L x̂ on the quadratures `force`, L the optimal regulator (`control = \"lqg\"`) or a given "
                "`gain`. Adds the closed loop's steady state; with `[simulate]`, closed-loop trajectories. See "
                "Physics: feedback.",
    Key("force", "list[string]", "the quadratures the force acts on, by their labels (the single cavity's "
                                 "mechanical momentum 'p'; the resonator's 'p'); one force each", min_items=1),
    Key("control", "string", "'lqg': L the linear-quadratic regulator of `target` and `effort` (Eq. (F4)); "
                             "'gain': L given as `gain`", default="lqg", choices=CONTROLS),
    Key("target", "list[string]", "lqg: the modes whose occupation the loop minimises (absent: the modes of the "
                                  "forced quadratures)", min_items=1),
    Key("effort", "number", "lqg: the weight of the force's square against the target's quadratures' squares "
                            "(force in units of ω_ref)", "1", 1.0, minimum=0.0, exclusive_minimum=True,
        maximum=1e12),
    Key("gain", "matrix", "gain: L, forces × quadratures (one row per force, one column per quadrature in the "
                          "system's order), in units of ω_ref: u_c = −L x̂ (cold damping of p: g on p's column)"),
)


def check_feedback(table: Mapping, modes: Sequence[str], quadratures: Sequence[str]) -> dict:
    """A ``[feedback]`` table (from a scenario, checked by the schema first, or from Python) made whole:
    ``force`` and their ``rows``, ``control``, and ``target`` and ``effort`` (lqg) or ``gain`` (F × 2N, gain);
    UserError naming the key for an unknown key, quadrature or mode, a value out of range, a key of the other
    control, or a gain of the wrong shape. A table checked before passes again unchanged."""
    _check_keys(table)
    foreign = {"lqg": ("gain",), "gain": ("target", "effort")}[table.get("control", "lqg")]
    given = [k for k in foreign if k in table]
    table = {**{k: v.default for k, v in FEEDBACK.keys.items() if v.default is not None}, **table}
    force = list(table["force"])
    for q in force:
        if q not in quadratures:
            raise UserError(f"feedback.force: {q!r} is not a quadrature of this system; its quadratures: "
                            f"{list(quadratures)}")
    if len(set(force)) != len(force):
        raise UserError(f"feedback.force names a quadrature twice: {force}")
    control = table["control"]
    if given:
        raise UserError(f"feedback.{given[0]} has no meaning with control = {control!r}")
    rows = [list(quadratures).index(q) for q in force]
    out = {"force": force, "rows": rows, "control": control}
    if control == "gain":
        return out | {"gain": _gain(table, len(force), len(quadratures))}
    target = list(table.get("target") or dict.fromkeys(modes[r // 2] for r in rows))
    for t in target:
        if t not in modes:
            raise UserError(f"feedback.target: {t!r} is not a mode of this system; its modes: {list(modes)}")
    return out | {"target": target, "effort": float(table["effort"])}


def _check_keys(table) -> None:
    """Known keys, ``force`` given, each value of its key's type and range (``spec.check_value``)."""
    from sde_com.spec import check_value

    if not isinstance(table, Mapping):
        raise UserError(f"feedback must be a table of {list(FEEDBACK.keys)}, got {table!r}")
    unknown = sorted(set(table) - set(FEEDBACK.keys) - {"rows"})  # rows: a table checked before
    if unknown:
        raise UserError(f"unknown key(s) {unknown} in [feedback]; allowed: {list(FEEDBACK.keys)}")
    if "force" not in table:
        raise UserError("feedback.force is needed: the quadratures the force acts on (e.g. ['p'])")
    for k, v in table.items():
        if k in FEEDBACK.keys:
            check_value(FEEDBACK.keys[k], v.tolist() if isinstance(v, np.ndarray) else v, f"feedback.{k}")


def _gain(table: Mapping, forces: int, dimension: int) -> np.ndarray:
    """The given gain, forces × quadratures; UserError for another shape (or rows of unequal length)."""
    if "gain" not in table:
        raise UserError("feedback.gain is needed with control = 'gain' (forces × quadratures, units of ω_ref)")
    gain = table["gain"]
    rows = [list(r) for r in (gain.tolist() if isinstance(gain, np.ndarray) else gain)]
    shape = (len(rows), *sorted({len(r) for r in rows}))
    if shape != (forces, dimension):
        raise UserError(f"feedback.gain must be {forces} × {dimension} (forces × quadratures), got "
                        f"{' × '.join(map(str, shape))}{' (rows of unequal length)' if len(shape) > 2 else ''}")
    return np.asarray(rows, dtype=float)


def loop_attrs(loop: Mapping) -> dict:
    """A checked loop (``check_feedback``) as JSON-able attributes: what a file records of the loop it ran."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in loop.items() if k != "rows"}


def force_matrix(rows: Sequence[int], dimension: int) -> np.ndarray:
    """B of Eq. (F1): column f the unit vector of force f's quadrature row."""
    B = np.zeros((dimension, len(rows)))
    B[list(rows), range(len(rows))] = 1.0
    return B


def target_weight(target: Sequence[str], modes: Sequence[str]) -> np.ndarray:
    """Q_x of Eq. (F4): the identity on the target modes' quadratures."""
    Q = np.zeros((2 * len(modes), 2 * len(modes)))
    for t in target:
        k = list(modes).index(t)
        Q[2 * k, 2 * k] = Q[2 * k + 1, 2 * k + 1] = 1.0
    return Q


def lqg_gain(A: np.ndarray, B: np.ndarray, Q: np.ndarray, effort: float) -> np.ndarray:
    """L of Eq. (F4): the stabilising solution S of the control Riccati equation (scipy's Schur method),
    checked (A − B L stable, residual below 1e-8 of the equation's scale). UserError naming why where there is
    none: an unstable mode the force does not reach, or a target the loop cannot see."""
    from scipy.linalg import solve_continuous_are

    R = effort * np.eye(B.shape[1])
    try:
        S = solve_continuous_are(A, B, Q, R)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise UserError(f"feedback: the regulator's Riccati equation (F4) has no stabilising solution ({exc}): "
                        "an unstable mode the force does not reach") from None
    S = 0.5 * (S + S.T)
    L = B.T @ S / effort
    residual = np.abs(A.T @ S + S @ A - S @ B @ B.T @ S / effort + Q).max()
    scale = max(np.abs(A.T @ S).max(), np.abs(Q).max(), 1e-300)
    if residual > 1e-8 * scale or np.linalg.eigvals(A - B @ L).real.max() >= 0:
        raise UserError("feedback: the regulator's Riccati equation (F4) has no stabilising solution (the force "
                        "cannot stabilise the loop)")
    return L


def loop_rate(A: np.ndarray, B: np.ndarray, L: np.ndarray) -> float:
    """The largest real part of the eigenvalues of A − B L (the estimate's loop, Eq. (F3)): < 0 when stable."""
    return float(np.linalg.eigvals(A - B @ L).real.max())


def estimate_covariance(A: np.ndarray, B: np.ndarray, L: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Σ of Eq. (F3), for a stable A − B L (``loop_rate`` < 0)."""
    from scipy.linalg import solve_continuous_lyapunov

    S = solve_continuous_lyapunov(A - B @ L, -K @ K.T)
    return 0.5 * (S + S.T)


def closed_loop(A, B, L, K, Vc) -> dict:
    """The closed loop's steady state (Eq. (F3)): ``cov`` V_fb = V_c + Σ, ``sigma`` Σ, ``force_variance`` the
    diagonal of L Σ Lᵀ."""
    sigma = estimate_covariance(A, B, L, K)
    return {"cov": Vc + sigma, "sigma": sigma, "force_variance": np.diag(L @ sigma @ L.T).copy()}


def control_step(A: np.ndarray, C: np.ndarray, B: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(G_u, G_y): how a force u_c held over a step dt moves the state and the record, exactly (zero-order hold,
    the counterpart of Eq. (M5)): u_{n+1} = Φ u_n + G_u u_c + w_n, ΔY_n = H u_n + G_y u_c + e_n, with
    G_u = ∫₀^dt e^{As} ds B and G_y = ∫₀^dt C ∫₀^s e^{Ar} dr B ds: the top-right blocks of the exponential of
    [[A, 0, B], [C, 0, 0], [0, 0, 0]] dt."""
    from scipy.linalg import expm

    d, m, f = A.shape[0], C.shape[0], B.shape[1]
    M = np.zeros((d + m + f, d + m + f))
    M[:d, :d], M[d:d + m, :d], M[:d, d + m:] = A, C, B
    E = expm(M * dt)
    return E[:d, d + m:], E[d:d + m, d + m:]


def control_step_em(A: np.ndarray, C: np.ndarray, B: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(G_u, G_y) of the Euler–Maruyama step: B dt and 0 (the record of a step sees the state at its start)."""
    return B * dt, np.zeros((C.shape[0], B.shape[1]))


def loop_moments(Phi, H, Q, K, Fu, V0, saved) -> np.ndarray:
    """The closed loop's covariance of u at the saved steps, exactly for the scheme (the moment solution the
    ensemble is checked against): z = (u, x̂) from Cov z₀ = [[V0, 0], [0, 0]] by
    z_{n+1} = [[Φ, F_u], [K_n H, Φ + F_u − K_n H]] z_n + (w_n, K_n e_n), with F_u = −G_u L and F_y = −G_y L
    (``control_step``) and the filter's gains K_n (``measurement.filter_gains``; the record's F_y x̂ cancels in
    the innovation ΔY − (H + F_y) x̂). Returns (len(saved), d, d)."""
    d = Phi.shape[0]
    Qw, S, R = Q[:d, :d], Q[:d, d:], Q[d:, d:]
    Z = np.zeros((2 * d, 2 * d))
    Z[:d, :d] = V0
    out, saved = [], list(saved)
    settled = K.shape[0] - 1
    for n in range(saved[-1] + 1):
        if n == saved[len(out)]:
            out.append(Z[:d, :d].copy())
            if len(out) == len(saved):
                break
        Kn = K[min(n, settled)]
        M = np.block([[Phi, Fu], [Kn @ H, Phi + Fu - Kn @ H]])
        N = np.block([[Qw, S @ Kn.T], [Kn @ S.T, Kn @ R @ Kn.T]])
        Z = M @ Z @ M.T + N
        Z = 0.5 * (Z + Z.T)
    return np.array(out)
