"""Integration schemes of du = A u dt + dW, E[dW dWᵀ] = D dt: one class per scheme, registered by name.

A scheme turns (A, D, dt) into the one-step map u ← F u + L ξ (ξ standard normal; the kernels only ever see
F and L) and says what that recursion samples: its stationary covariance (the reference of steady-state
estimates), its moments from a given V0 (the reference of transients), and which time steps it accepts. The
formulas live in ``sde_com.physics.linear``; a scheme only chooses among them (docs/physics.md, "The
stochastic picture"). Times and rates in any consistent unit (the simulation uses 1/ω_ref and ω_ref).

``SCHEMES`` maps the name a scenario gives (``[simulate] method``) to the scheme: adding a scheme is one class
here and one entry in it (or ``register_scheme`` from outside the package).
"""

from __future__ import annotations

import math

import numpy as np

from sde_com.errors import UserError
from sde_com.physics.feedback import control_step, control_step_em
from sde_com.physics.linear import (
    discrete_moment_covariance,
    discrete_stationary_covariance,
    euler_maruyama_max_dt,
    euler_maruyama_step,
    exact_step,
)
from sde_com.physics.measurement import record_step, record_step_em
from sde_com.physics.stability import decide_stability


class Scheme:
    """One integration scheme (a base class: subclasses define ``step`` and may override the rest).

    name: the ``[simulate] method`` that selects it.   doc: what it is, in a few words (the schema's doc).
    raw_noise: the step is F = I + A dt, L = √dt D^½ (D diagonal), so the recorded noise of a step is the raw
        Wiener increment dW itself: what the homodyne record (``detection``) and the truncated-Wigner check
        (``wigner``, whose nonlinear kernel is Euler–Maruyama on the same ξ) need.
    drift_time: where in a step a time-dependent A(t) is frozen, as a fraction of dt (``drive``).
    """

    name: str = ""
    doc: str = ""
    raw_noise: bool = False
    records: bool = False  # discretizes a detector's record and a feedback force (``record_step``, ``control_step``)
    drift_time: float = 0.0

    def step(self, A: np.ndarray, D: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """(F, L) of the one-step map u ← F u + L ξ for a step dt."""
        raise NotImplementedError

    def max_dt(self, A: np.ndarray) -> float:
        """Largest stable time step for drift A (inf: no limit)."""
        return math.inf

    def check_dt(self, A: np.ndarray, dt: float) -> None:
        """Raise UserError if dt is beyond ``max_dt(A)`` (nothing to check by default)."""

    def check_varying_dt(self, Fs: np.ndarray, dt: float) -> None:
        """Raise UserError if a step map F_n of a time-dependent A(t) is unstable where A(t) is stable."""

    def stationary_covariance(self, F: np.ndarray, L: np.ndarray, V_lyapunov: np.ndarray | None):
        """The covariance the recursion samples in its steady state (None where there is none); by default the
        Lyapunov V of Eq. (11) itself (a scheme without time-step bias)."""
        return V_lyapunov

    def moment_reference(self, F: np.ndarray, L: np.ndarray, V0: np.ndarray, steps: np.ndarray,
                         V_moment: np.ndarray) -> np.ndarray:
        """Covariances the recursion has at the given step numbers from V0; by default the exact moment
        solution V(t) = e^{At} V0 e^{Aᵀt} + Q(t) (``V_moment``, at t = steps·dt)."""
        return V_moment

    def record_step(self, A, D, C, G, dt):
        """(Φ, H, Q) of the system and its detectors' record over a step dt (``physics.measurement``, Eq. (M5)
        and its Euler–Maruyama counterpart): conditional trajectories run on it."""
        raise UserError(f"method = {self.name!r} has no discretization of a detector's record")

    def control_step(self, A, C, B, dt):
        """(G_u, G_y) of a feedback force held over a step dt (``physics.feedback.control_step``)."""
        raise UserError(f"method = {self.name!r} has no discretization of a feedback force")

    def __repr__(self) -> str:
        return f"<scheme {self.name!r}: {self.doc}>"


class EulerMaruyama(Scheme):
    """Euler–Maruyama: F = I + A dt, L = √dt D^½. Samples the discrete-Lyapunov V_dt = F V_dt Fᵀ + L Lᵀ,
    O(dt) from V of Eq. (11); stable only for |1 + λ dt| < 1 on every eigenvalue λ of A."""

    name = "em"
    doc = "Euler–Maruyama"
    raw_noise = True
    drift_time = 0.0  # A(t) at the step's start

    def step(self, A, D, dt):
        return euler_maruyama_step(A, D, dt)

    records = True

    def record_step(self, A, D, C, G, dt):
        return record_step_em(A, D, C, G, dt)

    def control_step(self, A, C, B, dt):
        return control_step_em(A, C, B, dt)

    def max_dt(self, A):
        return euler_maruyama_max_dt(A)

    def check_dt(self, A, dt):
        max_dt = self.max_dt(A)
        if not dt < max_dt:
            raise UserError(
                f"dt = {dt:g} is unstable for Euler–Maruyama here (|1 + λ dt| < 1 needs dt < {max_dt:.4g} "
                "in units of 1/ω_m); use a smaller dt or method = 'exact', which has no stability limit")

    def check_varying_dt(self, Fs, dt):
        # A_n = (F_n − I)/dt; a step is bad where the map has |1 + λ dt| ≥ 1 but A_n itself is stable
        eye = np.eye(Fs.shape[-1])
        lam = np.linalg.eigvals((Fs - eye) / dt)
        for n in np.flatnonzero(np.abs(1 + lam * dt).max(axis=1) >= 1):
            if decide_stability((Fs[n] - eye) / dt, 1.0).stable:  # A/ω_m: ω_ref = 1 in these units
                raise UserError(f"dt = {dt:g} is unstable for Euler–Maruyama from τ = {n * dt:g} on; "
                                 "use a smaller dt or method = 'exact'")

    def stationary_covariance(self, F, L, V_lyapunov):
        return None if V_lyapunov is None else discrete_stationary_covariance(F, L)

    def moment_reference(self, F, L, V0, steps, V_moment):
        return discrete_moment_covariance(F, L, V0, steps)


class ExactDiscretization(Scheme):
    """Exact discretization: F = Φ = e^{A dt}, L Lᵀ = Q_dt = ∫₀^dt e^{As} D e^{Aᵀs} ds (Van Loan). Samples
    V of Eq. (11) and the moment solution exactly, at any dt (no stability limit)."""

    name = "exact"
    doc = "one-step map e^{A dt} with Van Loan noise: no time-step bias"
    drift_time = 0.5  # A(t) frozen at the step's midpoint: error O(dt²) in the variation of A

    def step(self, A, D, dt):
        return exact_step(A, D, dt)

    records = True

    def record_step(self, A, D, C, G, dt):
        return record_step(A, D, C, G, dt)

    def control_step(self, A, C, B, dt):
        return control_step(A, C, B, dt)


SCHEMES: dict[str, Scheme] = {s.name: s for s in (EulerMaruyama(), ExactDiscretization())}


def get_scheme(name: str) -> Scheme:
    """The scheme registered as ``name``; UserError naming the allowed ones otherwise."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown scheme {name!r}; allowed: {', '.join(map(repr, SCHEMES))}") from None


def register_scheme(scheme: Scheme) -> Scheme:
    """Add a scheme to ``SCHEMES`` (SimulationSettings accepts its name from then on; scenario files, whose
    JSON Schema is fixed when the package is imported, accept the schemes listed above)."""
    if not isinstance(scheme, Scheme) or not scheme.name:
        raise UserError("a scheme is a Scheme instance with a non-empty name")
    if scheme.name in SCHEMES:
        raise UserError(f"scheme {scheme.name!r} is already registered")
    SCHEMES[scheme.name] = scheme
    return scheme


def scheme_names(where=lambda scheme: True) -> str:
    """The names of the registered schemes (those for which ``where`` is true), quoted, for messages."""
    return " or ".join(repr(n) for n, s in SCHEMES.items() if where(s))
