"""The periodic steady state of a modulated linear system (Floquet; docs/physics.md, *Periodic steady states*).

With A(t + T) = A(t) and D(t + T) = D(t), the covariance obeys

    dV/dt = A(t) V + V A(t)ᵀ + D(t),                                                                 (P1)

so over one period V(T) = Φ V(0) Φᵀ + Q with the monodromy Φ = Φ(T, 0) (dΦ/dt = A(t) Φ, Φ(0) = I) and
Q = ∫₀^T Φ(T, s) D(s) Φ(T, s)ᵀ ds.                                                                   (P2)
The asymptotic state is periodic, V(t + T) = V(t), and its value at t = 0 solves the discrete Lyapunov equation

    V(0) = Φ V(0) Φᵀ + Q,                                                                           (P3)

which has a unique positive solution exactly when every Floquet multiplier μ (an eigenvalue of Φ) has |μ| < 1;
otherwise the state grows at the rate max ln|μ| / T.                                                   (P4)
V at the phases 2πk/samples follows from V(0) by the same map over each sample interval. Φ and Q come from the
augmented linear equation d/dt [[X, Z], [0, W]] = [[A, D], [0, −Aᵀ]] [[X, Z], [0, W]] from the identity (Van
Loan's construction for a time-dependent system: X = Φ, Z = Q Φ^−ᵀ), integrated over each sample interval by the
fourth-order Magnus method on Gauss–Legendre nodes, the substeps doubled until two sets of interval maps, and
the V they give, agree within PERIODIC_RTOL (Richardson's estimate of the finer one's error: the difference over
15); V's error is the maps' times the conditioning of (P3), 1/(1 − |μ|²) near the stability boundary, so there
it may stay above PERIODIC_RTOL once rounding stops its fall. References: G. Floquet,
Ann. Sci. Éc. Norm. Supér. 12, 47 (1883); for a covariance, Mari and Eisert, Phys. Rev. Lett. 103, 213603 (2009);
Magnus: Blanes, Casas, Oteo and Ros, Phys. Rep. 470, 151 (2009).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sde_com.errors import NumericalError, UserError
from sde_com.spec import Key, make_table

PERIODIC = make_table(
    "periodic", "The periodic steady state of a modulated system (Floquet: the one-period propagator and the "
                "discrete Lyapunov equation, Eqs. (P1)–(P4); see Physics: periodic steady states): the covariance "
                "and E_N at `samples` phases of the modulation, their period average and maximum, the Floquet "
                "multipliers and stability. Needs something periodic: a [system] given by its matrices with "
                "`modulation`, a Hamiltonian periodic in the time t, or a [drive] of kind 'sine' beside it on a "
                "system with mean-field dynamics; no [simulate].",
    Key("samples", "integer", "phases per period at which the state is written (2πk/samples from the "
                              "modulation's t = 0)", "1", 64, minimum=4, maximum=4096),
)
PERIODIC_RTOL = 1e-11  # the maps' and V's estimated relative error (Richardson) the substeps are doubled to reach
MAX_STEPS = 1 << 16  # Magnus steps per period at most (samples × substeps: memory holds them all at once)
MARGINAL = 1e-9  # a multiplier within this of the unit circle is not stable (a conservative mode: rounding decides)
PSD_PHASES = 1024  # phases at which D(t) is checked positive semidefinite


@dataclass(frozen=True)
class Modulation:
    """A(t) = A + Σ_k (A_c,k cos kΩt + A_s,k sin kΩt), likewise D(t), in a consistent unit of rate (rad/s, or ω_ref
    in the scaled time); Ω > 0 the modulation's angular frequency. The cos and sin parts are d × d (the first
    harmonic: a [system]'s ``modulation``) or K × d × d (harmonics 1 … K: a periodic Hamiltonian's)."""

    frequency: float
    drift: np.ndarray
    drift_cos: np.ndarray
    drift_sin: np.ndarray
    diffusion: np.ndarray
    diffusion_cos: np.ndarray
    diffusion_sin: np.ndarray

    @property
    def period(self) -> float:
        return 2 * math.pi / self.frequency

    @property
    def harmonics(self) -> int:
        """K, the highest harmonic the cos and sin parts hold (1 for d × d parts; 0 where none)."""
        return max(np.reshape(m, (-1, *self.drift.shape)).shape[0] for m in (
            self.drift_cos, self.drift_sin, self.diffusion_cos, self.diffusion_sin))

    def scaled(self, rate: float) -> Modulation:
        """The same modulation in units of ``rate`` (every matrix and Ω divided by it)."""
        return Modulation(self.frequency / rate, *(m / rate for m in (
            self.drift, self.drift_cos, self.drift_sin, self.diffusion, self.diffusion_cos, self.diffusion_sin)))

    def at(self, t):
        """(A(t), D(t)) at times ``t`` (a number or an array): (..., d, d) each."""
        t = np.asarray(t, dtype=float)

        def series(mean, cos, sin):
            cos, sin = (np.reshape(m, (-1, mean.size)) for m in (cos, sin))
            phase = np.multiply.outer(t, self.frequency * np.arange(1, cos.shape[0] + 1))  # (..., K)
            return mean + (np.cos(phase) @ cos + np.sin(phase) @ sin).reshape(*t.shape, *mean.shape)

        return (series(self.drift, self.drift_cos, self.drift_sin),
                series(self.diffusion, self.diffusion_cos, self.diffusion_sin))


def check_diffusion(mod: Modulation, label: str = "system.modulation") -> None:
    """D(t) positive semidefinite over the period (at PSD_PHASES phases, to 1e-12 of its size): UserError naming
    the phase where it is not."""
    phases = np.linspace(0.0, 2 * math.pi, PSD_PHASES, endpoint=False)
    _, D = mod.at(phases / mod.frequency)
    low = np.linalg.eigvalsh(0.5 * (D + D.transpose(0, 2, 1))).min(axis=1)
    scale = max(np.abs(D).max(), 1e-300)
    k = int(np.argmin(low))
    if low[k] < -1e-12 * scale:
        raise UserError(f"{label}: the diffusion D(t) is not positive semidefinite during the period: at phase "
                        f"Ωt = {phases[k]:.4g} rad its smallest eigenvalue is {low[k]:.4g} (of a D of size "
                        f"{scale:.4g}); a diffusion must hold noise, not remove it")


def _interval_maps(mod: Modulation, samples: int, substeps: int):
    """(Φ_k, Q_k) over each sample interval [t_k, t_k+1] (t_k = kT/samples), by ``substeps`` fourth-order Magnus
    steps of the augmented equation (module docstring; ``kernels.floquet.magnus_interval_maps``). Each step's
    (Φ_n, Q_n) is composed in turn: a product of augmented maps over a whole interval would carry Φ^−ᵀ, which grows
    as e^{κ τ} for a strongly damped mode and drowns Q in rounding. Returns (samples, d, d) each."""
    from sde_com.kernels.floquet import magnus_interval_maps

    d = mod.diffusion.shape[0]
    h = mod.period / (samples * substeps)
    starts = np.arange(samples * substeps) * h
    (A1, D1), (A2, D2) = (mod.at(starts + c * h) for c in (0.5 - math.sqrt(3) / 6, 0.5 + math.sqrt(3) / 6))
    nodes = [np.ascontiguousarray(m, dtype=float) for m in (A1, A2, D1, D2)]
    if not (math.isfinite(h * h) and all(np.isfinite(m).all() for m in nodes)):
        raise NumericalError(f"the modulation's A(t), D(t) or its step {h:.3g} (1/ω_ref) is not finite: a period of "
                             f"{mod.period:.3g}/ω_ref cannot be integrated")
    Phi, Q = np.empty((samples, d, d)), np.empty((samples, d, d))
    magnus_interval_maps(*nodes, h, substeps, Phi, Q)
    if not (np.isfinite(Phi).all() and np.isfinite(Q).all()):
        raise NumericalError(f"the one-period maps overflow (a growth beyond floats within one sample interval of "
                             f"{mod.period / samples:.3g}/ω_ref): the system moves much faster than the period")
    return Phi, Q


def _periodic_from_maps(Phi_k: np.ndarray, Q_k: np.ndarray):
    """(monodromy, V at every sample phase or None when unstable) from the interval maps (Eqs. (P2)–(P3))."""
    from scipy.linalg import solve_discrete_lyapunov

    from sde_com.kernels.floquet import monodromy, propagate_phases

    d = Phi_k.shape[1]
    Phi, Q = np.empty((d, d)), np.empty((d, d))
    monodromy(Phi_k, Q_k, Phi, Q)
    if np.abs(np.linalg.eigvals(Phi)).max() >= 1.0 - MARGINAL:  # at |μ| = 1 rounding decides: not stable
        return Phi, None
    try:
        V0 = solve_discrete_lyapunov(Phi, 0.5 * (Q + Q.T))
    except (np.linalg.LinAlgError, ValueError):
        return Phi, None
    V = np.empty(Q_k.shape)
    propagate_phases(Phi_k, Q_k, 0.5 * (V0 + V0.T), V)
    return Phi, V


@dataclass(frozen=True)
class PeriodicState:
    """The periodic steady state of a ``Modulation`` (its units): ``cov`` (samples, d, d) at phases 2πk/samples,
    or None when unstable; ``multipliers`` (d,) complex, largest modulus first; ``growth_rate`` max ln|μ|/T
    (negative when stable); ``substeps`` used per sample interval; ``error`` the estimated relative error of
    ``cov`` (Richardson; NaN where it or the coarser solution is unstable)."""

    cov: np.ndarray | None
    multipliers: np.ndarray
    growth_rate: float
    substeps: int
    error: float

    @property
    def stable(self) -> bool:
        return self.cov is not None


def _map_error(fine, coarse) -> float:
    """Richardson's estimate of the finer interval maps' error (the change over 15), relative: Φ_k against the
    identity's scale (a map of a strongly damped mode is tiny, its error is not), Q_k against the largest Q_k."""
    (P1, Q1), (P0, Q0) = fine, coarse
    return max(float(np.abs(P1 - P0).max()) / max(float(np.abs(P1).max()), 1.0),
               float(np.abs(Q1 - Q0).max()) / max(float(np.abs(Q1).max()), 1e-300)) / 15


def _change(V, coarse) -> float:
    """Richardson's estimate of V's relative error from the coarser solution (NaN where either is unstable)."""
    if V is None or coarse is None:
        return math.nan
    return float(np.abs(V - coarse).max() / max(np.abs(V).max(), 1e-300)) / 15


def periodic_state(mod: Modulation, samples: int = 64, rtol: float = PERIODIC_RTOL) -> PeriodicState:
    """The periodic steady state (Eqs. (P1)–(P4)) at ``samples`` phases, the Magnus substeps per interval doubled
    from 2 until the interval maps (Φ_k, Q_k) and V each change by less than 15·rtol of their size (Richardson:
    the finer solution's error is about a fifteenth of the change; ``_map_error``). V's error is the maps' times
    the conditioning of (P3), 1/(1 − |μ|²) near the stability boundary: where doubling no longer lowers it (it
    falls less than 4-fold, rounding), the maps' convergence suffices and V's estimate is reported (``error``).
    NumericalError where MAX_STEPS per period does not bring the maps to rtol."""
    substeps, previous, error, map_error = 2, None, math.inf, math.inf
    while True:
        maps, solved = _interval_maps(mod, samples, substeps), None
        if previous is not None:
            map_before, error_before = map_error, error
            map_error = _map_error(maps, previous[0])
            if map_error <= rtol:  # V only once the maps hold (a discrete Lyapunov solve a level)
                solved = _periodic_from_maps(*maps)
                coarse = previous[1] if previous[1] is not None else _periodic_from_maps(*previous[0])
                (Phi, V), error = solved, _change(solved[1], coarse[1])
                # rounding: V and the maps no longer fall at fourth order (then the change itself is the error)
                stalled = error > error_before / 4 and map_error > map_before / 4
                if V is None or error <= rtol or stalled:  # a stable V only once checked against the coarser
                    error = 15 * error if stalled and error > rtol else error
                    break
        if 2 * substeps * samples > MAX_STEPS:
            if solved is not None:
                break  # V as good as its conditioning allows here: ``error`` says how good
            raise NumericalError(f"the periodic state did not converge within {MAX_STEPS} Magnus steps per period "
                                 f"(estimated error {map_error if previous is not None else float('nan'):.3g}): "
                                 "the system moves much faster than the period; give fewer samples or check rates")
        previous, substeps = (maps, solved), 2 * substeps
    mu = np.linalg.eigvals(Phi)
    mu = mu[np.argsort(-np.abs(mu), kind="stable")]
    rate = math.log(max(np.abs(mu).max(), 1e-300)) / mod.period
    return PeriodicState(V, mu, rate, substeps, error)


class SampledModel:
    """A(t), D(t) of a periodic trajectory (a mean field's limit cycle): ``drift_at`` a callable of one time
    giving A, D constant; the same interface as ``Modulation`` for ``periodic_state``."""

    def __init__(self, period: float, drift_at, diffusion: np.ndarray):
        self.period, self.drift_at, self.diffusion = float(period), drift_at, np.asarray(diffusion, dtype=float)

    def at(self, t):
        t = np.asarray(t, dtype=float)
        d = self.diffusion.shape[0]
        A = np.array([self.drift_at(x) for x in t.ravel()]).reshape(*t.shape, d, d)
        return A, np.broadcast_to(self.diffusion, (*t.shape, d, d))


CYCLE_RTOL = 1e-10  # a limit cycle repeats to this fraction of its size after one period
MAX_NEWTON = 30  # Newton steps of the shooting method at most
RELAX_PERIODS = 20  # periods integrated from the start before Newton (onto the attracting cycle's basin)
MAX_HALVINGS = 6  # halvings of a Newton step that does not reduce the residual before the search gives up
ESCAPE = 1e3  # a mean field this many times its start's size has left for no limit cycle


def limit_cycle(rhs, z0: np.ndarray, period: float, label: str = "the mean field"):
    """The periodic orbit z*(τ) of dz/dτ = rhs(τ, z) (rhs of period ``period``) near ``z0``, by shooting: the
    state first relaxed over RELAX_PERIODS periods, then Newton on P(z) − z = 0 (P the one-period map, DOP853 at
    relative 1e-12; its Jacobian by finite differences), each step halved until the residual falls. Checked: the
    orbit repeats to CYCLE_RTOL of its size, and it attracts (every eigenvalue of P's Jacobian inside the unit
    circle: a driven system settles on it). Returns (z*(0), scipy's dense solution over one period). UserError
    naming why where there is none (no convergence, a mean field that runs away, an unstable cycle)."""
    import scipy.integrate

    def flow(z, periods=1, dense=False):
        sol = scipy.integrate.solve_ivp(rhs, (0.0, periods * period), z, method="DOP853", rtol=1e-12, atol=1e-14,
                                        dense_output=dense)
        if not sol.success:
            raise UserError(f"{label}: the one-period integration failed ({sol.message})")
        return sol

    def none_found(why: str):
        return UserError(f"{label} found no limit cycle of the drive's period {period:.6g}/ω_ref ({why}): the drive "
                         "may be too deep for a periodic response")

    bound = ESCAPE * max(1.0, float(np.abs(z0).max()))
    z = flow(np.asarray(z0, dtype=float), RELAX_PERIODS).y[:, -1]
    if not np.abs(z).max() <= bound:
        raise none_found(f"the mean field runs away from {float(np.abs(z0).max()):.3g} to "
                         f"{float(np.abs(z).max()):.3g} over {RELAX_PERIODS} periods")
    end = flow(z).y[:, -1]
    residual = end - z
    for _ in range(MAX_NEWTON):
        scale = max(1.0, float(np.abs(z).max()))
        J = np.empty((z.size, z.size))
        for k in range(z.size):
            h = 1e-7 * max(1.0, abs(z[k]))
            shifted = z.copy()
            shifted[k] += h
            J[:, k] = (flow(shifted).y[:, -1] - end) / h
        if np.abs(residual).max() <= CYCLE_RTOL * scale:
            break
        step = np.linalg.solve(J - np.eye(z.size), residual)
        for _ in range(MAX_HALVINGS):
            trial = z - step
            if np.abs(trial).max() <= bound:
                trial_end = flow(trial).y[:, -1]
                if np.abs(trial_end - trial).max() < np.abs(residual).max():
                    break
            step = step / 2
        else:
            raise none_found(f"no Newton step reduces the residual {np.abs(residual).max():.3g} of {scale:.3g}")
        z, end, residual = trial, trial_end, trial_end - trial
    else:
        raise none_found(f"{MAX_NEWTON} Newton steps leave a residual {np.abs(residual).max():.3g} of {scale:.3g}")
    growth = float(np.abs(np.linalg.eigvals(J)).max())
    if growth >= 1.0:
        raise UserError(f"{label}: the limit cycle under the drive is unstable (its one-period map grows "
                        f"perturbations by {growth:.4g}): the driven system does not settle on it")
    return z, flow(z, dense=True).sol
