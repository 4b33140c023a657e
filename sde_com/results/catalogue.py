"""The one catalogue of output variables and coordinates: dims, UDUNITS units, CF names, meaning.

Every Dataset a run produces is labelled from here (``apply_catalogue``), the scenario's ``[output]
variables`` are checked against it, and the docs' output reference is generated from it and the run kinds
(``runs.kinds.output_reference_markdown``). Conventions: quadratures in (x, p) pairs per mode (the long_names
are the spinning resonator's words, relabelled for other systems by ``label_for_system``), vacuum variance 1/2,
natural log in E_N; run times in units of 1/ω_ref (the system's reference rate, ω_m for the built-in systems;
the time rule of docs/physics.md) except the ``time`` coordinate, in seconds.

In ``dims``, ``...`` stands for the swept parameters (absent in single-point runs); a shared name (``photons``,
``cov_ref``, ...) keeps one meaning, stated so that it holds in every run kind that writes it. The catalogue is
open: a plug-in registers its own variables (``register_variable``, ``register_output_set``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from sde_com._version import __version__
from sde_com.physics.resonator.device import PARAMETER_INFO

CONVENTIONS = "CF-1.8"
SWEPT = "..."  # placeholder in ``dims`` for the swept parameters
ENTRIES = "d(d+1)/2"  # the count of a covariance's independent entries in long_names, filled in per system
RECORDED = ("trace", "noise")  # the recorded trajectories: over trace times, streamed to the file as they come
OMEGA_REF_UNITS = "rad s-1"


@dataclass(frozen=True)
class OutputVariable:
    """One output variable or coordinate: what ``apply_catalogue`` writes into its attributes.

    units: a UDUNITS string, or None for a string label (no units attribute). standard_name: only where the
    CF standard-name table truly fits. flag_values / flag_meanings: for booleans stored as int8 flags.
    """

    name: str
    dims: tuple[str, ...]
    units: str | None
    long_name: str
    meaning: str
    standard_name: str | None = None
    flag_values: tuple[int, ...] | None = None
    flag_meanings: str | None = None

    @property
    def attrs(self) -> dict:
        """The netCDF attributes of this variable."""
        out = {}
        if self.units is not None:
            out["units"] = self.units
        out["long_name"] = self.long_name
        if self.standard_name is not None:
            out["standard_name"] = self.standard_name
        if self.flag_values is not None:
            out["flag_values"] = np.array(self.flag_values, dtype=np.int8)
            out["flag_meanings"] = self.flag_meanings
        return out


def _v(name, dims, long_name, meaning, units="1", **kw) -> OutputVariable:
    return OutputVariable(name, tuple(dims), units, long_name, meaning, **kw)


_S, _B, _T, _M = SWEPT, "branch", "time", ("row", "col")

_VARIABLE_LIST = [
    # steady-state sweep (Eqs. (6), (7), (11)-(14))
    _v("logneg", (_S, _B), "logarithmic negativity E_N of driven mode and mechanics, Eq. (12)",
       "Steady-state E_N of the driven optical mode U and the mechanics; NaN on unstable branches. For a "
       "system without a reported pair (every system but the resonator) it is over `pair`: E_N of each pair "
       "of the system's modes (long_name: logarithmic negativity E_N of a pair of modes)."),
    _v("logneg_reflected", (_S, _B), "logarithmic negativity E_N of reflected mode and mechanics",
       "Steady-state E_N of the reflected mode V (populated by backscattering) and the mechanics."),
    _v("logneg_optical", (_S, _B), "logarithmic negativity E_N of driven and reflected modes",
       "Steady-state E_N between the two optical modes."),
    _v("photons", (_S, _B), "mean-field intracavity photon number |α_U|² of the driven mode",
       "Per mean-field branch of Eq. (7) in a sweep; the solution of the mean-field equations at each time "
       "under a time-dependent drive (over `phase`: along the limit cycle of a periodic drive, [periodic]); the "
       "branch's value in a truncated-Wigner check."),
    _v("photons_reflected", (_S, _B), "mean-field intracavity photon number |α_V|² of the reflected mode",
       "As `photons`, for the reflected mode V."),
    _v("coupling", (_S, _B), "effective coupling |G_U|/ω_m of the driven mode",
       "G_U = √2 G₀ α_U, in units of ω_m (Fig. 3(c)-(e))."),
    _v("coupling_reflected", (_S, _B), "effective coupling |G_V|/ω_m of the reflected mode",
       "G_V = √2 G₀ α_V, in units of ω_m."),
    _v("displacement", (_S, _B), "mean-field dimensionless mechanical displacement q_s, Eq. (7)",
       "Per branch in a sweep; q(t) of the mean-field equations under a time-dependent drive (over `phase`: "
       "along the limit cycle of a periodic drive, [periodic])."),
    _v("detuning_effective", (_S, _B), "effective detuning Δ/ω_ref of the driven mode at the branch's mean field",
       "Δ = Δ₀ − √2 g₀ q_s of a system that has one (the single cavity: Vitali et al.'s Δ)."),
    _v("detuning_bare", (_S, _B), "bare detuning Δ₀/ω_ref = (ω_c − ω_l)/ω_ref of the driven mode",
       "The input detuning of the branch's mean field, in either detuning_kind (the single cavity)."),
    _v("stable", (_S, _B), "steady state exists: every eigenvalue of the drift matrix A has negative real part",
       "Routh–Hurwitz stability of the branch; stored as an int8 flag, read back as bool.",
       flag_values=(0, 1), flag_meanings="unstable stable"),
    _v("marginal", (_S, _B), "stability decision within rounding (Routh–Hurwitz and eigenvalues disagree, or "
       "|max Re λ| < 1e-9 ω_ref)", "The branch's `stable` flag may flip under rounding; stored as an int8 flag, "
       "read back as bool.", flag_values=(0, 1), flag_meanings="decided marginal"),
    _v("n_branches", (_S,), "number of mean-field branches (real roots of Eq. (7))",
       "Branches beyond it are NaN-padded along `branch`."),
    _v("cov", (_S, _B, *_M), "steady-state covariance matrix V of Eq. (11), vacuum variance 1/2",
       "Lyapunov solution A V + V Aᵀ + D = 0; NaN on unstable branches."),
    _v("sagnac_shift", (_S,), "Sagnac–Fizeau shift Δ_F/ω_m, Eq. (1)",
       "Depends on the spin and the device only (no detuning or direction dimension)."),
    _v("logneg_max", (_S,), "maximum of E_N (driven mode, mechanics) over detuning and stable branches",
       "Written when detuning is swept (the detuning dimension is reduced); an [output] list naming it "
       "without a swept detuning is refused."),
    _v("revival", (_S,), "revival factor χ = max E_N(Ω, J) / max E_N(Ω = 0, J = 0), Eq. (14)",
       "Written with `logneg_max`."),
    # time-domain ensembles (simulate); `time` only in transients (save_times / save_every)
    _v("cov_sim", (_S, _B, _T, *_M), "covariance V estimated from the simulated ensemble",
       "Steady runs: mean of per-trajectory time averages of u uᵀ after the burn-in; transients and driven "
       "runs: ensemble average at each snapshot time."),
    _v("cov_sim_err", (_S, _B, _T, *_M), "standard error of cov_sim (spread over independent trajectories)",
       "Batch means over 32 consecutive batches when there is a single trajectory."),
    _v("cov_ref", (_S, _B, _T, *_M), "reference covariance the simulated estimate is compared with",
       "Steady runs: what the scheme samples (Lyapunov V for exact, discrete-Lyapunov V_dt for Euler–Maruyama); "
       "transients: the scheme's discrete moments (EM) or the moment solution (exact); driven runs: the moment "
       "ODE dV/dt = A(t)V + VA(t)ᵀ + D; truncated-Wigner check: V_dt of linearized Euler–Maruyama."),
    _v("cov_moment", (_S, _B, _T, *_M), "moment solution V(t) of the continuous linear model",
       "V(t) = e^{At}V(0)e^{Aᵀt} + ∫e^{As}De^{Aᵀs}ds (transients only)."),
    _v("zscore", (_S, _B, _T, *_M), "(cov_sim − cov_ref) / cov_sim_err, entry by entry",
       "NaN where the error is zero (an exactly known state)."),
    _v("zscore_max", (_S, _B, _T), f"largest |estimate − cov_ref| / standard error over the {ENTRIES} independent "
       "entries",
       "The test statistic of agreement with the reference (driven runs: against the scheme's discrete moments); "
       "the max runs over the d(d+1)/2 independent entries of the d×d covariance, d = 2N: 21 for the resonator."),
    _v("zscore_max_continuous", (_S, _B), f"largest |cov_sim − V| / cov_sim_err over the {ENTRIES} independent "
       "entries",
       "Against the continuous Lyapunov V: for Euler–Maruyama, the time-step bias in units of σ (steady runs); "
       "the max runs over the d(d+1)/2 independent entries of the d×d covariance, d = 2N: 21 for the resonator."),
    _v("logneg_sim", (_S, _B, _T), "E_N of the simulated covariance (driven mode, mechanics)",
       "E_N of cov_sim. For a system without a reported pair, N ≥ 2 modes (ensembles and drives): over `pair`, "
       "every pair of its modes (as logneg_sim_err and logneg_ref)."),
    _v("logneg_sim_err", (_S, _B, _T), "jackknife standard error of logneg_sim",
       "Leave-one-group-out jackknife over 32 groups of trajectories."),
    _v("logneg_ref", (_S, _B, _T), "E_N of the reference covariance (driven mode, mechanics)",
       "E_N of cov_ref in steady runs and truncated-Wigner checks, of the continuous moment solution in "
       "transients and driven runs."),
    _v("max_dt_em", (_S, _B), "largest stable Euler–Maruyama step ω_m·dt (|1 + λ dt| < 1)",
       "In units of 1/ω_m."),
    _v("trace", (_S, _B, "trajectory", _T, "quadrature"),
       "recorded quadratures u(t) (xU, yU, xV, yV, q, p), vacuum variance 1/2",
       "Fluctuations about the mean field of the first `traces` trajectories."),
    _v("noise", (_S, _B, "trajectory", _T, "quadrature"), "noise that entered each recorded state since the "
       "previous record", "L ξ, or the accumulated innovation u_n − F^k u_(n−k) when recording every k steps "
       "(zero at t = 0)."),
    # time-dependent drive
    _v("drive", (_T,), "drive envelope ε(t)/ε", "s(ω_m t) of the [drive] table."),
    # truncated-Wigner check of the linearization
    _v("cov_tw", _M, "fluctuation covariance of the nonlinear model (truncated Wigner)",
       "Time averages about the mean-field fixed point, Euler–Maruyama."),
    _v("cov_tw_err", _M, "standard error of cov_tw (spread over trajectories)", "Independent trajectories."),
    _v("cov_lin", _M, "covariance of the linearized model on the same noise (Euler–Maruyama)",
       "Same seed, same noise numbers as cov_tw."),
    _v("cov_lin_err", _M, "standard error of cov_lin", "Spread over trajectories."),
    _v("difference", _M, "cov_tw − cov_lin, trajectory by trajectory, averaged",
       "The common noise cancels: resolves the nonlinearity far below either statistical error."),
    _v("difference_z", _M, "difference / its standard error: the nonlinearity in units of σ", "Entry by entry."),
    _v("logneg_tw", (), "E_N of cov_tw (driven mode, mechanics)", "Nonlinear model."),
    _v("logneg_lin", (), "E_N of cov_lin (driven mode, mechanics)", "Linearized model on the same noise."),
    # detector's view
    _v("spectrum_welch", ("omega",), "output spectral density S_θ(ω) estimated from the records (of ΔY/(√2 dt)), per "
       "unit ω/ω_ref (shot noise 1/2)", "Welch, two-sided, symmetrized: ∫ S dω/2π (ω in units of ω_ref) is the "
       "record's variance; shot noise 1/2. A run warns where it disagrees with spectrum_analytic beyond its error "
       "bars, naming the likely cause."),
    _v("spectrum_welch_err", ("omega",), "standard error of spectrum_welch", "Spread over trajectories."),
    _v("spectrum_analytic", ("omega",), "output spectral density S_θ(ω) of the linear model, per unit ω/ω_ref "
       "(shot noise 1/2)", "Transfer function of the drift matrix A."),
    _v("filtered_logneg", ("bandwidth",), "E_N of the mechanics and the filtered output mode",
       "Filter of bandwidth 1/τ at filter_center (global attribute; units of ω_ref), Genes et al. 2008. For a "
       "system: E_N of the filtered output of `mode` and the mode `partner` (global attributes)."),
    _v("logneg_intracavity", (), "E_N of the detected mode and the mechanics inside the cavity (steady state)",
       "Lyapunov V of Eq. (11) restricted to the detected mode and the filtered output's partner: the intracavity "
       "entanglement the filtered output's is compared with (Genes et al. 2008)."),
    # continuous measurement ([[measure]]): the conditional steady state and the Gaussian measures
    _v("cov_conditional", (_S, _B, *_M), "conditional steady-state covariance V_c of the monitored system, "
       "vacuum variance 1/2", "The stabilising solution of the Riccati equation (M4) (docs/physics.md, continuous "
       "measurement): the covariance of the state given the detectors' records; NaN on unstable branches."),
    _v("logneg_conditional", (_S, _B, "pair"), "logarithmic negativity E_N of a pair of modes in the conditional "
       "state", "E_N (Eqs. (12)–(13)) of cov_conditional, for every pair of modes."),
    _v("kalman_gain", (_S, _B, "quadrature", "channel"), "Kalman gain K/√ω_ref of the conditional steady state",
       "K = V_c Cᵀ + Γ of Eq. (M3), in units of √ω_ref: how a record's innovation moves the estimate."),
    _v("occupation", (_S, _B, "mode"), "mean occupation ⟨δa†δa⟩ of each mode's fluctuations",
       "(V_xx + V_pp − 1)/2 of the unconditional steady state V (0: vacuum)."),
    _v("purity", (_S, _B), "purity Tr ρ² of the whole steady state", "1/(2^N √det V) (1: a pure state)."),
    _v("squeezing", (_S, _B, "mode"), "smallest quadrature variance of each mode relative to the vacuum, in dB",
       "10 log₁₀(λ_min/(1/2)) of the mode's 2 × 2 block of V; negative: squeezed below the vacuum."),
    _v("occupation_conditional", (_S, _B, "mode"), "mean occupation ⟨δa†δa⟩ of each mode in the conditional state",
       "As occupation, of cov_conditional: the fluctuations about the filter's estimate."),
    _v("purity_conditional", (_S, _B), "purity Tr ρ² of the conditional state", "As purity, of cov_conditional."),
    _v("squeezing_conditional", (_S, _B, "mode"), "smallest quadrature variance of each mode in the conditional "
       "state relative to the vacuum, in dB", "As squeezing, of cov_conditional."),
    # measurement-based feedback ([feedback]): the closed loop's steady state
    _v("cov_feedback", (_S, _B, *_M), "covariance of the closed loop's steady state (feedback on the estimate)",
       "Eq. (F3): V_c + Σ, the conditional covariance plus that of the estimate under the loop; vacuum 1/2. NaN "
       "where the loop cannot hold an unstable branch."),
    _v("occupation_feedback", (_S, _B, "mode"), "occupation ⟨a†a⟩ of each mode under feedback",
       "As occupation, of cov_feedback."),
    _v("logneg_feedback", (_S, _B, "pair"), "E_N of each pair of modes under feedback", "As logneg, of cov_feedback."),
    _v("feedback_gain", (_S, _B, "force", "quadrature"), "feedback gain L of u_c = −L x̂, in units of ω_ref",
       "The regulator of Eq. (F4) (control = 'lqg') or the given gain; one row per force."),
    _v("force_variance", (_S, _B, "force"), "variance of each feedback force u_c, in units of ω_ref²",
       "Diagonal of L Σ Lᵀ (Eq. (F3)): the force the loop needs, per unit of the forced quadrature's rate."),
    # the periodic steady state of a modulated system ([periodic])
    _v("cov_periodic", (_S, "phase", *_M), "covariance of the periodic steady state at each phase of the modulation",
       "Eq. (P3) and its propagation over the period (vacuum variance 1/2); NaN where the state is unstable."),
    _v("logneg_periodic", (_S, "phase", "pair"), "E_N of each pair of modes over the modulation's phase",
       "Of cov_periodic."),
    _v("logneg_periodic_mean", (_S, "pair"), "E_N of each pair averaged over the modulation's period",
       "The mean over the equally spaced phases (the trapezoid rule of a periodic function: E_N has kinks where it "
       "reaches 0, so the mean converges slowly with `samples` there)."),
    _v("logneg_periodic_max", (_S, "pair"), "largest E_N of each pair over the modulation's period",
       "Over the sampled phases."),
    _v("floquet_multiplier", (_S, "multiplier"), "modulus |μ| of each Floquet multiplier, largest first",
       "Eigenvalues of the one-period propagator Φ(T) (Eq. (P4)): the state is stable when every |μ| < 1."),
    _v("floquet_multiplier_phase", (_S, "multiplier"), "argument of each Floquet multiplier", "In the order of "
       "floquet_multiplier.", units="rad"),
    _v("stable_periodic", (_S,), "periodic steady state exists: every Floquet multiplier has |μ| < 1",
       "Decided by the multipliers, not by the average drift (a Mathieu tongue is unstable with a stable average); "
       "a multiplier within 1e-9 of the unit circle counts as not stable.", flag_values=(0, 1),
       flag_meanings="unstable stable"),
    _v("modulation_frequency", (_S,), "angular frequency Ω = 2π/T of the modulation (its fundamental)",
       "The phase of the periodic variables is Ω t from the modulation's t = 0: a [system] modulation's frequency, "
       "a Hamiltonian's (stated by its period or found from its cos, sin and exp of t), or a drive's frequency "
       "times ω_ref.", units="rad s-1"),
    _v("growth_rate", (_S,), "growth rate max ln|μ|/T of the modulated system, in units of ω_ref",
       "Negative when the periodic state is stable; where it is not, the rate at which the covariance's scale "
       "grows is twice it."),
    # a transient of a modulated system ([simulate] on a [system] with modulation)
    _v("cov_periodic_ref", (_S, _B, _T, *_M), "covariance of the periodic steady state at each snapshot time",
       "The moment equation (Eq. (P1)) from the periodic state at the modulation's t = 0 (Eq. (P3)): where the "
       "transient settles; NaN where the modulated system is unstable."),
    _v("logneg_periodic_ref", (_S, _B, _T), "E_N of the periodic steady state at each snapshot time",
       "Of cov_periodic_ref, over `pair`."),
    _v("zscore_periodic_max", (_S, _B, _T), f"largest |cov_sim − cov_periodic_ref| / cov_sim_err over the {ENTRIES} "
       "independent entries", "The ensemble against the periodic state: a test of it once the transient has died "
       "out, or from initial = 'steady' (the periodic state itself) throughout."),
    # conditional trajectories: the true state, the record and the Kalman filter's estimate
    _v("estimate", ("trajectory", _T, "quadrature"), "conditional mean x̂ of the quadratures given the record "
       "(the Kalman filter's estimate), vacuum variance 1/2", "Eq. (M6): the estimate of u at each saved time from "
       "the record before it; beside `trace`, the true state."),
    _v("record", ("trajectory", "interval", "channel"), "detector record ΔY summed over each save interval, in "
       "units where its white noise has variance ω_ref dt", "Eq. (M1) in the scaled time τ = ω_ref t: "
       "dY = 2√(ηκ/ω_ref)(cos θ x + sin θ p) dτ + dW, E[dW²] = dτ; interval k ends at time k + 1. The same "
       "record in every run that writes one: `[[measure]]`'s detectors, and `[detect]`'s perfect homodyne "
       "(η = 1) at every step (ΔY/(√2 dt) is the output quadrature X_θ,out of a_out = √(2κ) a − a_in)."),
    _v("cov_filter", (_T, *_M), "the Kalman filter's error covariance P(t) from the initial covariance",
       "Eq. (M6), exact for the discretized record: the covariance of u − x̂ at each saved time (in a filtered "
       "record file: over filter_time, until it settles; constant after)."),
    _v("cov_error", (_T, *_M), "ensemble estimate of the estimation error's covariance ⟨(u − x̂)(u − x̂)ᵀ⟩",
       "Over the trajectories, at each saved time; against cov_filter in zscore_filter."),
    _v("cov_error_err", (_T, *_M), "standard error of cov_error", "From the spread of (u − x̂)(u − x̂)ᵀ over the "
       "independent trajectories."),
    _v("zscore_filter", (_T, *_M), "z-score (cov_error − cov_filter)/cov_error_err",
       "A correct filter and noise give |z| of order 1 (Bonferroni bound over the entries and times in the tests)."),
    _v("cov_filter_continuous", (_T, *_M), "the continuous Riccati solution V_c(t) from the initial covariance",
       "Eq. (M4) integrated (DOP853, relative tolerance 1e-10) to each saved time: what cov_filter tends to as "
       "dt → 0."),
    _v("zscore_filter_continuous", (_T, *_M), "z-score (cov_error − cov_filter_continuous)/cov_error_err",
       "As zscore_filter, against the continuous filter: the step's bias shows here once the ensemble resolves "
       "it."),
    _v("cov_feedback_sim", (_T, *_M), "ensemble estimate of the closed loop's state covariance ⟨u uᵀ⟩",
       "Over the trajectories at each saved time (the state has zero mean); against cov_feedback_moment in "
       "zscore_feedback."),
    _v("cov_feedback_sim_err", (_T, *_M), "standard error of cov_feedback_sim", "From the spread of u uᵀ over the "
       "independent trajectories."),
    _v("cov_feedback_moment", (_T, *_M), "the closed loop's state covariance from the initial covariance",
       "The joint moment recursion of (u, x̂), exact for the scheme (physics.feedback.loop_moments)."),
    _v("zscore_feedback", (_T, *_M), "z-score (cov_feedback_sim − cov_feedback_moment)/cov_feedback_sim_err",
       "A correct loop gives |z| of order 1 (Bonferroni bound over the entries and times in the tests)."),
    _v("feedback_force", ("trajectory", _T, "force"), "feedback force u_c = −L x̂ of the traced trajectories, in "
       "units of ω_ref", "At the saved times, from the estimate there (held over the following step)."),
    _v("innovation", ("trajectory", "interval", "channel"), "innovation (ΔY − H x̂)/√Δτ of a filtered record",
       "The part of each record sample the filter did not predict; unit variance (up to O(Δτ)) and white when the "
       "model is right."),
    _v("innovation_variance", ("channel",), "variance of the whitened innovations Ω_n^(−1/2)(ΔY_n − H x̂_n)",
       "1 when the model is right (a factor 2 in the measurement strength or the noise moves it)."),
    _v("innovation_variance_err", ("channel",), "standard error of innovation_variance",
       "√(2/n) for n white Gaussian innovations."),
    _v("innovation_lag1", ("channel",), "lag-1 autocorrelation of the whitened innovations",
       "0 when the model is right (the innovations of the optimal filter are white)."),
    _v("innovation_lag1_err", ("channel",), "standard error of innovation_lag1", "1/√n for n white innovations."),
]
VARIABLES: dict[str, OutputVariable] = {v.name: v for v in _VARIABLE_LIST}

_COORDINATE_LIST = [
    *(_v(name, (name,), long_name, f"Sweep parameter ({'string label' if units is None else units}).",
         units=units) for name, (units, long_name) in PARAMETER_INFO.items()),
    _v("branch", (_B,), "mean-field branch, ascending in q_s", "Index of the real roots of Eq. (7)."),
    _v("row", ("row",), "quadrature (row) in the order xU, yU, xV, yV, q, p", "Row of a 6×6 matrix.", units=None),
    _v("col", ("col",), "quadrature (col) in the order xU, yU, xV, yV, q, p", "Column of a 6×6 matrix.",
       units=None),
    _v("pair", ("pair",), "pair of modes 'a-b' whose logarithmic negativity E_N is given",
       "Every pair of the system's modes, in mode order (a system without a reported pair).", units=None),
    _v("time", (_T,), "time since the start of the run",
       "Seconds (ω_ref t / ω_ref); for a detection record, the start of each bin.", units="s"),
    _v("time_scaled", (_T,), "time ω_ref·t in units of 1/ω_ref (ω_ref: global attribute omega_ref)",
       "The time every scenario value is given in; ω_ref = ω_m for the built-in systems."),
    _v("dt", ("dt",), "time step ω_m·dt, in units of 1/ω_m", "Time-step study: one run per dt."),
    _v("trajectory", ("trajectory",), "trajectory index (keys its random stream with the seed)",
       "Recorded trajectories 0 .. traces − 1."),
    _v("quadrature", ("quadrature",), "quadrature of a recorded trace (xU, yU, xV, yV, q, p)",
       "Vacuum variance 1/2.", units=None),
    _v("omega", ("omega",), "angular frequency ω/ω_m relative to the laser (ω > 0: blue of the laser)",
       "Below a third of the Nyquist frequency, where the Euler–Maruyama step does not colour the record."),
    _v("bandwidth", ("bandwidth",), "filter bandwidth 1/(τ ω_m)", "Of the filtered output mode."),
    _v("mode", ("mode",), "mode of the system", "The system's mode names, in order.", units=None),
    _v("force", ("force",), "feedback force, by the quadrature it acts on", "[feedback] force order.", units=None),
    _v("phase", ("phase",), "phase Ωt of the modulation", "2πk/samples from the modulation's t = 0 (a [drive]'s own "
       "phase offset is not added).", units="rad"),
    _v("multiplier", ("multiplier",), "Floquet multiplier index", "Largest modulus first."),
    _v("channel", ("channel",), "record channel (a homodyne; a heterodyne detector gives two)",
       "Channels in [[measure]] order; their mode, phase and efficiency are the channel_* coordinates."),
    _v("channel_mode", ("channel",), "detected mode of each record channel", "A mode with an output port.",
       units=None),
    _v("channel_theta", ("channel",), "local-oscillator phase θ of each record channel",
       "The channel records cos θ x + sin θ p (a heterodyne's second channel: θ + π/2).", units="rad"),
    _v("channel_efficiency", ("channel",), "detection efficiency η of each record channel",
       "A heterodyne detector's channels each take half of its efficiency."),
    _v("interval", ("interval",), "save interval of a record (interval k: from saved time k to k + 1)",
       "The record's ΔY is summed over each."),
    _v("filter_time", ("filter_time",), "time of the filter's covariance, until it settles",
       "The record's times up to the step where P reaches its fixed point (to rounding); P is constant after.",
       units="s"),
]
COORDINATES: dict[str, OutputVariable] = {c.name: c for c in _COORDINATE_LIST}

# `logneg` of a system over `pair` (its entry's long_name names the resonator's pair)
PAIR_LOGNEG_LONG_NAME = "logarithmic negativity E_N of a pair of modes"


def label_for_system(ds, system) -> None:
    """Describe ``system`` in ``ds``, in place: the global attributes ``system`` (its name),
    ``system_definition`` (what regenerates it: ``LinearSystem.definition``, JSON) and ``references`` (its
    papers; none for a system given by its matrices); the count of its covariance's independent entries in
    the long_names that give one; and, unless the catalogue's long_names are already in its words
    (``catalogue_words``: the spinning resonator's), the long_names that name the resonator's modes,
    quadratures or ω_m in those of ``system`` (the meaning is the same)."""
    import json

    ds.attrs["system"] = system.name
    ds.attrs["system_definition"] = json.dumps(system.definition())
    if system.references:
        ds.attrs["references"] = system.references
    else:
        ds.attrs.pop("references", None)
    d = system.dimension
    for var in ("zscore_max", "zscore_max_continuous"):
        if var in ds.variables:
            ds[var].attrs["long_name"] = VARIABLES[var].long_name.replace(ENTRIES, str(d * (d + 1) // 2))
    if system.catalogue_words:
        return
    modes, quadratures = system.modes, system.quadratures
    order = ", ".join(quadratures)
    pair = f"{modes[0]}, {modes[-1]}"
    texts = {"logneg": PAIR_LOGNEG_LONG_NAME, "branch": f"mean-field branch of {system.name}, in its order",
             "row": f"quadrature (row) in the order {order}", "col": f"quadrature (col) in the order {order}",
             "quadrature": f"quadrature of a recorded trace ({order})",
             "trace": f"recorded quadratures u(t) ({order}), vacuum variance 1/2",
             "logneg_sim": f"E_N of the simulated covariance ({pair})",
             "logneg_ref": f"E_N of the reference covariance ({pair})",
             "max_dt_em": "largest stable Euler–Maruyama step ω_ref·dt (|1 + λ dt| < 1)",
             "photons": f"mean-field photon number |α|² of mode {modes[0]}",
             "coupling": f"effective optomechanical coupling |G|/ω_ref of mode {modes[0]}",
             "dt": "time step ω_ref·dt, in units of 1/ω_ref"}
    for var in ("logneg_sim", "logneg_ref"):  # an ensemble's E_N over every pair of modes
        if var in ds.variables and "pair" in ds[var].dims:
            texts[var] = texts[var].replace(f"({pair})", "of a pair of modes")
    for var, text in texts.items():
        if var in ds.variables:
            ds[var].attrs["long_name"] = text
_SEAM_DIMS = {"logneg": (_S, _B, "pair")}

# The sets of variables the producers write (a system's steady state by its chain or point by point, the
# ensembles, a drive, a truncated-Wigner check, a detector's view): (what it is, the variables, in order). The run
# kinds (``runs.kinds.RUN_KINDS``) say which sets they write; a plug-in adds its own (``register_output_set``).
OUTPUT_SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sweep": ("A system with a steady-state chain (the spinning resonator: `steady_chain`)",
              ("logneg", "logneg_reflected", "logneg_optical", "photons", "photons_reflected", "coupling",
               "coupling_reflected", "displacement", "stable", "n_branches", "cov", "sagnac_shift", "logneg_max",
               "revival")),
    "seam_sweep": ("Any other system, point by point (the mean-field values where the system declares them: "
                   "`LinearSystem.mean_field_variables`)",
                   ("logneg", "stable", "marginal", "n_branches", "cov", "photons", "coupling", "displacement",
                    "detuning_effective", "detuning_bare")),
    "simulate": ("Time-domain ensembles (`[simulate]`), beside the sweep's variables",
                 ("cov_sim", "cov_sim_err", "cov_ref", "cov_moment", "zscore", "zscore_max",
                  "zscore_max_continuous", "logneg_sim", "logneg_sim_err", "logneg_ref", "max_dt_em", "trace",
                  "noise")),
    "drive": ("Time-dependent drive (`[drive]`)",
              ("drive", "photons", "photons_reflected", "displacement", "logneg_sim", "logneg_sim_err",
               "logneg_ref", "cov_sim", "cov_sim_err", "cov_ref", "zscore_max")),
    "wigner": ("Truncated-Wigner check (`[wigner]`)",
               ("cov_tw", "cov_tw_err", "cov_lin", "cov_lin_err", "cov_ref", "difference", "difference_z",
                "zscore_max", "logneg_tw", "logneg_lin", "logneg_ref", "photons")),
    "conditional": ("Continuous measurement (`[[measure]]`), beside the steady state's variables (point by point, "
                    "E_N over `pair`)",
                    ("occupation", "purity", "squeezing", "cov_conditional", "logneg_conditional", "kalman_gain",
                     "occupation_conditional", "purity_conditional", "squeezing_conditional")),
    "periodic": ("Periodic steady state of a modulated system (`[periodic]`)",
                 ("cov_periodic", "logneg_periodic", "logneg_periodic_mean", "logneg_periodic_max",
                  "floquet_multiplier", "floquet_multiplier_phase", "stable_periodic", "growth_rate",
                  "modulation_frequency", "photons",
                  "photons_reflected", "displacement")),
    "modulated": ("Transient of a modulated system (`[simulate]` on a `[system]` with `modulation` or a "
                  "Hamiltonian periodic in t)",
                  ("logneg_sim", "logneg_sim_err", "logneg_ref", "logneg_periodic_ref", "cov_sim", "cov_sim_err",
                   "cov_ref", "cov_periodic_ref", "zscore_max", "zscore_periodic_max")),
    "feedback": ("Feedback on the estimate (`[feedback]` beside `[[measure]]`), beside the conditional state",
                 ("cov_feedback", "occupation_feedback", "logneg_feedback", "feedback_gain", "force_variance")),
    "conditional_trajectories": ("Conditional trajectories (`sde_com.conditional_simulate`: records and the Kalman "
                                 "filter)",
                                 ("trace", "estimate", "record", "cov_filter", "cov_error", "cov_error_err",
                                  "zscore_filter", "cov_filter_continuous", "zscore_filter_continuous",
                                  "cov_feedback_sim", "cov_feedback_sim_err", "cov_feedback_moment",
                                  "zscore_feedback", "feedback_force",
                                  "innovation_variance", "innovation_variance_err",
                                  "innovation_lag1", "innovation_lag1_err")),
    "filter": ("The Kalman filter of a record file (`sde-com filter`: a scenario's system and `[[measure]]` "
               "detectors)",
               ("estimate", "cov_filter", "innovation", "innovation_variance", "innovation_variance_err",
                "innovation_lag1", "innovation_lag1_err")),
    "detect": ("Detector's view (`[detect]`)",
               ("record", "spectrum_welch", "spectrum_welch_err", "spectrum_analytic", "filtered_logneg",
                "logneg_intracavity")),
}


# variables a swept run of a kind writes only when the scenario's [output] names them: large per-point
# matrices, which would be most of a big sweep's file and of its run time (measured; docs/performance.md).
# At a single operating point (nothing swept) they are written: the matrix is then what there is to show.
ON_REQUEST: dict[str, tuple[str, ...]] = {"sweep": ("cov",)}


def default_variables(kind: str, swept: bool = True) -> tuple[str, ...]:
    """The data variables a run of ``kind`` writes when its scenario has no [output] table (``swept``:
    whether any parameter is swept; see ON_REQUEST)."""
    return tuple(v for v in variables_of(kind) if not swept or v not in ON_REQUEST.get(kind, ()))


def variables_of(kind: str) -> tuple[str, ...]:
    """The data variables of an output set ('sweep', 'seam_sweep', 'simulate', 'drive', 'wigner', 'detect', or a
    plug-in's: ``OUTPUT_SETS``)."""
    return OUTPUT_SETS[kind][1]


def register_variable(variable: OutputVariable) -> OutputVariable:
    """Add an output variable (or, with its own dims as its name, a coordinate: ``COORDINATES``) to the
    catalogue, from outside the package (a plug-in system's or run kind's). The same entry again is a no-op;
    another under a taken name is a TypeError."""
    table = COORDINATES if variable.dims == (variable.name,) else VARIABLES
    present = table.get(variable.name)
    if present is not None and present != variable:
        raise TypeError(f"output variable {variable.name!r} is already in the catalogue, as something else")
    table[variable.name] = variable
    return variable


def register_output_set(name: str, heading: str, variables: tuple[str, ...]) -> None:
    """Add a set of output variables (its name, what it is, its variables in order, each in the catalogue) for a
    plug-in run kind to write."""
    missing = [v for v in variables if v not in VARIABLES]
    if missing:
        raise TypeError(f"output set {name!r}: variables {missing} are not in the catalogue (register_variable)")
    if name in OUTPUT_SETS and OUTPUT_SETS[name] != (heading, tuple(variables)):
        raise TypeError(f"output set {name!r} is already registered")
    OUTPUT_SETS[name] = (heading, tuple(variables))


def dims_in(name: str, kind: str) -> tuple[str, ...]:
    """The dimensions of variable ``name`` in a run of ``kind`` (``...``: the swept parameters)."""
    dims = VARIABLES[name].dims
    if kind == "seam_sweep":
        return _SEAM_DIMS.get(name, dims)
    if kind in ("drive", "modulated"):
        return (_T, *(d for d in dims if d not in (_S, _B, _T)))
    if kind == "periodic" and dims == (_S, _B):  # the mean field's values along its limit cycle
        return (_S, "phase")
    if kind in ("wigner", "detect"):
        return tuple(d for d in dims if d not in (_S, _B) and (kind == "detect" or d != _T))
    return dims


def time_coordinates(scaled_times, omega_ref: float) -> dict[str, xr.DataArray]:
    """``time`` (seconds) and ``time_scaled`` (= ω_ref t) on the ``time`` dimension, from times in 1/ω_ref."""
    scaled = np.asarray(scaled_times, dtype=float)
    return {"time": xr.DataArray(scaled / omega_ref, dims=_T, attrs=COORDINATES["time"].attrs),
            "time_scaled": xr.DataArray(scaled, dims=_T, attrs=COORDINATES["time_scaled"].attrs)}


def set_time_reference(ds: xr.Dataset, omega_ref: float) -> None:
    """Record ω_ref (rad s-1), the unit of every scenario time, in the global attributes of ``ds``."""
    ds.attrs["omega_ref"] = float(omega_ref)
    ds.attrs["omega_ref_units"] = OMEGA_REF_UNITS


def entry(ds: xr.Dataset, name: str) -> OutputVariable:
    """The catalogue entry of a variable or coordinate of ``ds``; KeyError (a bug) when it has none."""
    table, what = (COORDINATES, "coordinate") if name in ds.coords else (VARIABLES, "variable")
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"output {what} {name!r} is not in sde_com.results.catalogue: add it there") from None


def parameter_entry(key) -> OutputVariable:
    """The catalogue entry of a system's parameter as a sweep coordinate, from its ``spec.Key`` (units,
    long_name): a time or a rate in units of ω_ref is dimensionless."""
    from sde_com import spec

    if "number" not in key.types and "integer" not in key.types:
        return OutputVariable(key.name, (key.name,), None, key.doc, key.doc)
    if key.unit in (spec.TIME, spec.RATE):
        return OutputVariable(key.name, (key.name,), "1", f"{key.doc} (in units of {spec.unit_text(key.unit)})",
                              key.doc)
    return OutputVariable(key.name, (key.name,), key.unit or "1", key.doc, key.doc)


def apply_catalogue(ds: xr.Dataset, title: str | None = None, system=None) -> xr.Dataset:
    """A shallow copy of ``ds`` labelled from the catalogue: units, long_name, standard_name and flags of
    every variable and coordinate (int64 stored as int32), and the CF global attributes (Conventions,
    source, software_versions; ``title`` when given, else kept or "sde_com output"; a scenario's title
    replaces it later); ``system`` (a ``LinearSystem``): described in it (``label_for_system``: name,
    definition, references, long_names in its words). A name missing from the catalogue raises KeyError."""
    ds = ds.copy(deep=False)
    for name in list(ds.variables):
        # a system's own parameter as a coordinate: labelled from its Key (the catalogue's are the resonator's)
        own = bool(system) and name in ds.coords and name in system.parameters and (
            not system.catalogue_words or name not in COORDINATES)
        e = parameter_entry(system.parameters[name]) if own else entry(ds, name)  # a system's own parameter
        var = ds.variables[name]
        if var.dtype == np.int64:
            if var.size and np.abs(var.values).max() > np.iinfo(np.int32).max:
                raise OverflowError(f"{name} does not fit in int32")
            if name in ds.indexes:
                ds = ds.assign_coords({name: (var.dims, var.values.astype(np.int32), var.attrs)})
            else:
                ds[name] = var.astype(np.int32)
            var = ds.variables[name]
        for key in ("units", "standard_name", "flag_values", "flag_meanings"):
            var.attrs.pop(key, None)
        var.attrs.update(e.attrs)
    if ("time" in ds.dims or "dt" in ds.dims) and "omega_ref" not in ds.attrs:
        raise KeyError("a Dataset with a time axis or a dt study needs the omega_ref attribute "
                       "(catalogue.set_time_reference)")
    ds.attrs["Conventions"] = CONVENTIONS
    if title is not None:
        ds.attrs["title"] = title
    ds.attrs.setdefault("title", "sde_com output")
    ds.attrs["source"] = f"sde_com {__version__}"
    ds.attrs["software_versions"] = software_versions()
    if system:
        label_for_system(ds, system)
    return ds


PROVENANCE_PACKAGES = ("numpy", "numba", "scipy", "xarray")


def software_versions() -> str:
    """The versions of the libraries whose arithmetic a result's bits depend on ("numpy 2.4.6, numba ...", from
    the installed distributions' metadata: nothing is imported), for the ``software_versions`` attribute."""
    from importlib.metadata import PackageNotFoundError, version

    def one(name):
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} (unknown)"

    return ", ".join(one(name) for name in PROVENANCE_PACKAGES)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def output_reference_markdown(kinds=None) -> str:
    """The output reference of the docs: a table per output set, under the run kinds that write it (``kinds``:
    (a kind's heading, the sets it writes), in order; default: every set under its own heading), and one of
    coordinates, from the catalogue."""
    if kinds is None:
        kinds = [(heading, (name,)) for name, (heading, _) in OUTPUT_SETS.items()]
    lines = ["# Output variables", "",
             "Generated from `sde_com.results.catalogue` and the run kinds (`sde_com.runs.kinds.RUN_KINDS`). `...` in "
             "the dimensions stands for the swept parameters, in the scenario's order; `time` is in seconds, with "
             "`time_scaled` = ω_ref·t beside it (ω_ref: the system's reference rate, ω_m for the built-in systems; "
             f"global attribute `omega_ref` in {OMEGA_REF_UNITS}). Files follow {CONVENTIONS}. Units are UDUNITS "
             "strings; `1` is dimensionless. Every file also says which system made it: the global attributes "
             "`system`, `system_definition` (what regenerates it) and `parameters`.", ""]
    for heading, sets in kinds:
        lines += [f"## {heading}", ""]
        for set_name in sets:
            set_heading, names = OUTPUT_SETS[set_name]
            if len(sets) > 1:
                lines += [f"### {set_heading}", ""]
            lines += ["| variable | dims | units | long_name | meaning |", "|---|---|---|---|---|"]
            for name in names:
                v = VARIABLES[name]
                dims = ", ".join(dims_in(name, set_name)) or "(scalar)"
                when = (" Written when `[output]` names it, or when nothing is swept."
                        if name in ON_REQUEST.get(set_name, ()) else "")
                lines.append(f"| `{name}` | {dims} | {v.units or ''} | {_cell(v.long_name)} | "
                             f"{_cell(v.meaning)}{when} |")
            if set_name == "simulate":
                lines += ["", "`time` appears only in transients (`save_times` / `save_every`); a time-step study "
                              "(a list of `dt`) adds a leading `dt` dimension to these variables."]
            lines.append("")
    lines += ["## Coordinates", "", "| coordinate | units | long_name | meaning |", "|---|---|---|---|"]
    for c in COORDINATES.values():
        lines.append(f"| `{c.name}` | {c.units or ''} | {_cell(c.long_name)} | {_cell(c.meaning)} |")
    return "\n".join(lines) + "\n"
