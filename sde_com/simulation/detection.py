"""What a detector sees: records of the output field (the perfect homodyne of ``physics.measurement``'s
Eq. (M1), ``record_from_traces``: one concept and one normalisation with ``[[measure]]``) and their spectra
estimated from traces.

Input–output relation a_out = √(2κ) a − a_in, in quadratures X_out = √(2κ) δX − X_in (vacuum variance 1/2,
so the output of a vacuum-driven empty cavity is white with spectral density 1/2: shot noise), for the
spinning resonator's optical modes or the output port of any system's mode (``LinearSystem.output_ports``).
Times in units of 1/ω_ref, angular frequencies ω in units of ω_ref (ω_ref = ω_m for the resonator). Spectra
are two-sided and symmetrized: ∫ S(ω) dω/2π is the variance, a convention shared with
``sde_com.physics.spectra``.
"""

from __future__ import annotations

import functools
import json
import math
import warnings

import numpy as np
import xarray as xr

from sde_com.errors import RunWarning, UserError
from sde_com.kernel_cache import ENSEMBLE_MODULES, announce_compile
from sde_com.physics.gaussian import logneg_from_blocks
from sde_com.physics.linear import lyapunov_covariance_reference
from sde_com.physics.measurement import record_from_traces
from sde_com.physics.spectra import carries_all_noise, filtered_logneg, mode_rows, output_spectrum, port_noise
from sde_com.physics.system import LinearSystem
from sde_com.results.catalogue import (
    apply_catalogue,
    set_time_reference,
    time_coordinates,
)
from sde_com.results.sweep import DEFAULT_SYSTEM, as_system
from sde_com.simulation.ensemble import simulate_point
from sde_com.simulation.keys import DETECT
from sde_com.simulation.schemes import scheme_names


def welch_spectrum(records: np.ndarray, dt: float, segment: int = 1024) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    """Two-sided Welch estimate of the spectral density of real records (trajectory, time), with errors.

    Returns (ω, S(ω), standard error): S averaged over trajectories, its error from their spread (each
    trajectory's Welch estimate is independent of the others'). ω in units of ω_ref (1/dt's), ascending.
    """
    import scipy.signal  # lazily: ~0.25 s that `import sde_com` (and every CLI command) need not pay

    records = np.atleast_2d(records)
    nper = min(segment, records.shape[-1])
    f, p = scipy.signal.welch(records, fs=1.0 / dt, nperseg=nper, return_onesided=False, scaling="density",
                              detrend=False, axis=-1)
    order = np.argsort(f)
    f, p = f[order], p[..., order]
    n = p.shape[0]
    err = p.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(p.shape[-1], np.nan)
    # scipy's two-sided density of a real signal puts half the power at ±f: it integrates to the variance
    # over df, which is our ∫ S dω/2π, so S(ω = 2πf) is the density itself
    return 2.0 * np.pi * f, p.mean(axis=0), err


WELCH_KEPT = 0.3  # of the Nyquist frequency π/dt: the Welch bins kept lie below it


def welch_bins_kept(segment: int) -> int:
    """How many Welch bins of ``segment`` samples lie at |ω| ≤ WELCH_KEPT·π/dt (ω = 2πk/(segment·dt))."""
    return 2 * int(WELCH_KEPT * segment / 2) + 1


# data variables of detection_dataset (units and meaning: sde_com.results.catalogue)
# the [detect] defaults, from their one home (sde_com.simulation.keys)
DETECT_DEFAULTS = {k.name: k.default for k in DETECT.keys.values() if k.default is not None}


def check_port_carries_the_noise(D: np.ndarray, kappa: float, mode: str | int, name: str) -> None:
    """A homodyne record from traces needs the port's input to be all of the mode's noise: D = κ on the mode's
    two quadratures and nothing coupling them to other noise (then the recorded noise increment is
    √(2κ) X_in dt; ``spectra.carries_all_noise``). UserError naming the mode otherwise (spectra and filtered
    modes need only ``port_noise``)."""
    port_noise(D, kappa, mode)  # the port fits inside D
    if not carries_all_noise(D, kappa, mode):
        raise UserError(f"detect.mode = {name!r}: records from traces need the port to carry all of the "
                        f"mode's noise (D = κ = {kappa:.6g} s-1 on its quadratures, no other noise there)")


def _detector_view(A, D, omega_ref, thermal, settings, mode, kappa, partner, theta, segment, bandwidths,
                   center) -> dict:
    """The arrays of the detector's view (``detection_dataset``) of one stable point (A, D in rad/s)."""
    s = settings
    out = simulate_point(A, D, omega_ref, thermal, s)
    records = record_from_traces(out["trace"], out["noise"], kappa / omega_ref, s.dt, mode, theta)
    # the output quadrature's bin average X_θ,out = ΔY/(√2 dt), whose spectrum is the output field's
    w, S, err = welch_spectrum(records[..., 0] / (math.sqrt(2.0) * s.dt), s.dt, segment)
    keep = np.abs(w) <= WELCH_KEPT * np.pi / s.dt  # below Nyquist/3, where the EM step does not colour the record
    w, S, err = w[keep], S[keep], err[keep]
    S_an = output_spectrum(A, D, kappa, w * omega_ref, mode, theta)
    warn_of_spectrum(w, S, err, S_an, A / omega_ref, s.dt, min(segment, records.shape[-2]), records.shape[0])
    en = [filtered_logneg(A, D, kappa, 1.0 / (b * omega_ref), center * omega_ref, mode, partner=partner)
          for b in bandwidths]
    n = A.shape[0]
    pair = [*mode_rows(n, mode), *mode_rows(n, n // 2 - 1 if partner is None else partner)]
    V = lyapunov_covariance_reference(A / omega_ref, D / omega_ref)  # Eq. (11)
    intracavity = logneg_from_blocks(np.ascontiguousarray(V[np.ix_(pair, pair)]))
    return dict(records=records, w=w, S=S, err=err, S_an=S_an, en=np.array(en), intracavity=float(intracavity))


SPECTRUM_ALPHA = 1e-3  # the chance that a right spectrum is warned of (Bonferroni over its bins)


def warn_of_spectrum(w, S, err, S_an, A_scaled, dt: float, segment: int, n_traj: int) -> None:
    """A RunWarning where the Welch spectrum disagrees with the analytic one beyond its error bars (max |z| over
    the bins above the Bonferroni bound at SPECTRUM_ALPHA, Student's t with n_traj − 1 dof), naming the likely
    cause: a segment too short to resolve the narrowest peak (its width, twice the slowest decay rate of A, below
    the Welch resolution 2π/(segment dt)), else the step dt (Euler–Maruyama colours the record)."""
    from scipy.stats import t as student_t

    ok = np.isfinite(err) & (err > 0)
    if n_traj < 2 or not ok.any():
        return
    z = np.abs(S[ok] - S_an[ok]) / err[ok]
    bound = float(student_t.ppf(1 - SPECTRUM_ALPHA / (2 * z.size), n_traj - 1))
    if z.max() <= bound:
        return
    at = float(w[ok][np.argmax(z)])
    resolution = 2 * np.pi / (segment * dt)
    width = 2 * float(np.min(np.abs(np.linalg.eigvals(A_scaled).real)))
    if width < resolution:
        cause = (f"the Welch segment of {segment} samples resolves Δω = {resolution:.3g} ω_ref, coarser than the "
                 f"narrowest peak (width ≈ {width:.3g} ω_ref): give a longer segment (and duration)")
    else:
        cause = (f"the step dt = {dt:g}/ω_ref colours the record (Euler–Maruyama): give a smaller dt")
    warnings.warn(f"[detect] the Welch spectrum disagrees with the analytic one beyond its error bars: max |z| = "
                  f"{z.max():.1f} at ω = {at:.3g} ω_ref (bound {bound:.1f} over {z.size} bins); likely cause: "
                  f"{cause}", RunWarning, stacklevel=2)


def _check_bandwidths(filter_bandwidths) -> np.ndarray:
    bandwidths = np.asarray(filter_bandwidths, dtype=float)
    if bandwidths.ndim != 1 or bandwidths.size == 0 or np.any(~(bandwidths > 0)):
        raise UserError("filter_bandwidths must be a non-empty list of numbers > 0 (units of ω_ref)")
    return bandwidths


def _check_settings(s) -> None:
    if not s.scheme.raw_noise or not s.traces or s.trace_every != 1 or s.transient and s.save_times is not None:
        raise UserError("the detector's view needs Euler–Maruyama traces recorded at every step: method = "
                        f"{scheme_names(lambda sc: sc.raw_noise)}, traces >= 1, no save_times, save_every = dt "
                        "or absent")


def _dataset(v: dict, bandwidths, dt: float, omega_ref: float, attrs: dict, system) -> xr.Dataset:
    steps = v["records"].shape[-2]
    ds = xr.Dataset(
        {
            "record": (("trajectory", "interval", "channel"), v["records"]),
            "spectrum_welch": ("omega", v["S"]),
            "spectrum_welch_err": ("omega", v["err"]),
            "spectrum_analytic": ("omega", v["S_an"]),
            "filtered_logneg": ("bandwidth", v["en"]),
            "logneg_intracavity": ((), v["intracavity"]),
        },
        coords=dict(omega=("omega", v["w"]), bandwidth=("bandwidth", bandwidths),
                    trajectory=("trajectory", np.arange(v["records"].shape[0], dtype=np.int32)),
                    interval=("interval", np.arange(steps, dtype=np.int32)), channel=("channel", np.zeros(1, np.int32)),
                    channel_mode=("channel", [attrs["mode"]]), channel_theta=("channel", [attrs["theta"]]),
                    channel_efficiency=("channel", [1.0]),
                    **time_coordinates(np.arange(steps + 1) * dt, omega_ref)),
        attrs=attrs,
    )
    set_time_reference(ds, omega_ref)
    return apply_catalogue(ds, title="sde_com detector's view", system=system)


def _label_pair(ds: xr.Dataset, mode: str, partner: str) -> xr.Dataset:
    """The long_names of the filtered and the intracavity E_N naming the detected mode and its partner."""
    ds["filtered_logneg"].attrs["long_name"] = f"E_N of the filtered output mode of {mode} and mode {partner}"
    ds["logneg_intracavity"].attrs["long_name"] = f"E_N of modes {mode} and {partner} inside the system (steady state)"
    return ds


def detected_modes(system, params, mode: str | None, partner: str | None) -> tuple[str, str, float]:
    """(mode, partner, κ of the port): ``mode`` a mode with an output port of ``system`` (absent: its first
    port), ``partner`` another of its modes (absent: the last). UserError naming the key otherwise."""
    ports = system.output_ports(params)
    mode = next(iter(ports)) if mode is None else mode
    if mode not in ports:
        raise UserError(f"detect.mode = {mode!r}: not a mode with an output port of system {system.name!r}; "
                        f"ports: {list(ports)}")
    partner = system.modes[-1] if partner is None else partner
    if partner not in system.modes or partner == mode:
        raise UserError(f"detect.partner = {partner!r}: the filtered output is paired with another mode of "
                        f"system {system.name!r}: one of {[m for m in system.modes if m != mode]}")
    return mode, partner, ports[mode]


def detected_branch(system, params, mode: str | None, partner: str | None):
    """(mode, partner, κ, branch) of a system's [detect] run (``detected_modes``): its first stable branch, whose
    port must carry all of the mode's noise (``check_port_carries_the_noise``). UserError otherwise."""
    mode, partner, kappa = detected_modes(system, params, mode, partner)
    branch = next((b for b in system.branches(params) if system.stability(b, params).stable), None)
    if branch is None:
        raise UserError(f"[detect] needs a stable branch at this point of system {system.name!r}: none is")
    check_port_carries_the_noise(branch.diffusion, kappa, system.modes.index(mode), mode)
    return mode, partner, kappa, branch


def detection_dataset(system: LinearSystem | str, params, settings, mode: str | None = None,
                      partner: str | None = None, theta: float = DETECT_DEFAULTS["theta"],
                      segment: int = DETECT_DEFAULTS["segment"],
                      filter_bandwidths=DETECT_DEFAULTS["filter_bandwidths"],
                      filter_center: float = DETECT_DEFAULTS["filter_center"]) -> xr.Dataset:
    """The detector's view of one point ``params`` of any system with output ports
    (``LinearSystem.output_ports``), in one Dataset, at its first stable branch: homodyne records of the port
    of ``mode`` (absent: the first port) from Euler–Maruyama traces, their Welch spectrum ± error beside the
    analytic output spectrum (``spectra.output_spectrum``), E_N between the mode ``partner`` (absent: the last
    mode; the resonator's mechanics) and the filtered output (Genes et al. 2008) for each filter bandwidth 1/τ
    at ``filter_center`` (both in units of ω_ref; −1 is the Stokes sideband), and the intracavity E_N of the
    same pair (Lyapunov V) beside it. UserError naming the key for an unknown mode, no stable branch, or a
    port that does not carry all of its mode's noise (``check_port_carries_the_noise``).
    """
    _check_settings(settings)
    bandwidths = _check_bandwidths(filter_bandwidths)
    system = as_system(system)
    params = system.resolve(params)
    mode, partner, kappa, branch = detected_branch(system, params, mode, partner)
    announce_compile((*system.kernel_modules, *ENSEMBLE_MODULES))
    index, omega_ref = system.modes.index(mode), system.reference_rate(params)
    v = _detector_view(branch.drift, branch.diffusion, omega_ref, functools.partial(system.thermal_covariance,
                       params), settings, index, kappa, system.modes.index(partner), theta, segment,
                       bandwidths, filter_center)
    attrs = dict(filter_center=filter_center, mode=mode, partner=partner, theta=theta,
                 branch=np.int32(branch.index), parameters=json.dumps(params))
    return _label_pair(_dataset(v, bandwidths, settings.dt, omega_ref, attrs, system), mode, partner)


def detect(settings, *, system: LinearSystem | str = DEFAULT_SYSTEM, mode: str | None = None,
           partner: str | None = None, theta: float = DETECT_DEFAULTS["theta"],
           segment: int = DETECT_DEFAULTS["segment"], filter_bandwidths=DETECT_DEFAULTS["filter_bandwidths"],
           filter_center: float = DETECT_DEFAULTS["filter_center"], **params) -> xr.Dataset:
    """The detector's view (``detection_dataset``) of one point ``params`` (scalars) of ``system``, an instance
    or a registered name. Public as ``sde_com.detect``."""
    return detection_dataset(system, params, settings, mode, partner, theta, segment, filter_bandwidths,
                             filter_center)
