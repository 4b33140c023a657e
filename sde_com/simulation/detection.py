"""What a detector sees: homodyne records of the output field and their spectra estimated from traces.

Input–output relation a_out = √(2κ) a − a_in, in quadratures X_out = √(2κ) δX − X_in (vacuum variance 1/2,
so the output of a vacuum-driven empty cavity is white with spectral density 1/2: shot noise). Times in
units of 1/ω_m, angular frequencies ω in units of ω_m. Spectra are two-sided and symmetrized:
∫ S(ω) dω/2π is the variance, a convention shared with ``sde_com.physics.spectra``.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from sde_com.errors import UserError
from sde_com.physics.model import operating_points
from sde_com.physics.spectra import filtered_logneg, output_spectrum
from sde_com.results.catalogue import apply_catalogue, set_time_reference, time_coordinates, variables_of
from sde_com.simulation.ensemble import simulate_point
from sde_com.simulation.keys import DETECT
from sde_com.simulation.schemes import scheme_names

_MODE_ROWS = {"U": (0, 1), "V": (2, 3)}


def homodyne_record(trace: np.ndarray, noise: np.ndarray, kappa: float, dt: float, mode: str = "U",
                    theta: float = 0.0) -> np.ndarray:
    """Homodyne photocurrent of mode ``mode`` at local-oscillator phase θ from Euler–Maruyama traces.

    Over step n the detector integrates X_θ,out = cos θ X_out + sin θ Y_out; with the step's input-noise
    increment dW_n (the recorded ``noise`` of state n + 1: D_xx = κ, so ∫X_in dt = dW/√(2κ)) that is
    √(2κ) X_θ(t_n) dt − dW_θ,n/√(2κ). The record is that integral divided by dt (the bin average), so
    white vacuum noise has variance 1/(2 dt) per sample and two-sided spectral density 1/2.
    Only exact for Euler–Maruyama traces (their noise is the raw input noise) recorded at every step;
    ``kappa`` and ``dt`` in units of ω_m and 1/ω_m. trace, noise: (..., time, 6) → record (..., time − 1).
    """
    if mode not in _MODE_ROWS:
        raise UserError(f"mode must be 'U' or 'V', got {mode!r}")
    if not (kappa > 0 and dt > 0):
        raise UserError("kappa and dt must be > 0")
    rx, ry = _MODE_ROWS[mode]
    c, s = math.cos(theta), math.sin(theta)
    x = c * trace[..., :-1, rx] + s * trace[..., :-1, ry]
    dw = c * noise[..., 1:, rx] + s * noise[..., 1:, ry]
    return (math.sqrt(2.0 * kappa) * x * dt - dw / math.sqrt(2.0 * kappa)) / dt


def welch_spectrum(records: np.ndarray, dt: float, segment: int = 1024) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
    """Two-sided Welch estimate of the spectral density of real records (trajectory, time), with errors.

    Returns (ω, S(ω), standard error): S averaged over trajectories, its error from their spread (each
    trajectory's Welch estimate is independent of the others'). ω in units of ω_m, ascending.
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


# data variables of detection_dataset (units and meaning: sde_com.results.catalogue)
DETECT_VARIABLES = variables_of("detect")
DETECT_KEYS = tuple(DETECT.keys)
# the [detect] defaults, from their one home (sde_com.simulation.keys)
DETECT_DEFAULTS = {k.name: k.default for k in DETECT.keys.values() if k.default is not None}


def detection_dataset(device, detuning: float, direction: str, settings, mode: str = DETECT_DEFAULTS["mode"],
                      theta: float = DETECT_DEFAULTS["theta"], segment: int = DETECT_DEFAULTS["segment"],
                      filter_bandwidths=DETECT_DEFAULTS["filter_bandwidths"],
                      filter_center: float = DETECT_DEFAULTS["filter_center"]):
    """The detector's view of one operating point, in one Dataset: homodyne records from Euler–Maruyama
    traces, their Welch spectrum ± error beside the analytic output spectrum (``spectra.output_spectrum``),
    and E_N between the mechanics and a filtered output mode (Genes et al. 2008) for each filter bandwidth
    1/τ (units of ω_m) at ``filter_center`` (units of ω_m; −1 is the Stokes sideband).
    """
    s = settings
    if not s.scheme.raw_noise or not s.traces or s.trace_every != 1 or s.transient and s.save_times is not None:
        raise UserError("the detector's view needs Euler–Maruyama traces recorded at every step: method = "
                        f"{scheme_names(lambda sc: sc.raw_noise)}, traces >= 1, no save_times, save_every = dt "
                        "or absent")
    bandwidths = np.asarray(filter_bandwidths, dtype=float)
    if bandwidths.ndim != 1 or bandwidths.size == 0 or np.any(~(bandwidths > 0)):
        raise UserError("filter_bandwidths must be a non-empty list of numbers > 0 (units of ω_m)")
    wm = device.omega_m
    op = operating_points(device, detuning, direction)[0]
    out = simulate_point(op.drift, op.diffusion, wm, device.n_thermal, s)
    records = homodyne_record(out["trace"], out["noise"], device.kappa / wm, s.dt, mode, theta)
    w, S, err = welch_spectrum(records, s.dt, segment)
    keep = np.abs(w) <= 0.3 * np.pi / s.dt  # below Nyquist/3, where the EM step does not colour the record
    w, S, err = w[keep], S[keep], err[keep]
    S_an = output_spectrum(op.drift, op.diffusion, device.kappa, w * wm, mode, theta)
    en = [filtered_logneg(op.drift, op.diffusion, device.kappa, 1.0 / (b * wm), filter_center * wm, mode)
          for b in bandwidths]
    ds = xr.Dataset(
        {
            "homodyne": (("trajectory", "time"), records),
            "spectrum_welch": ("omega", S),
            "spectrum_welch_err": ("omega", err),
            "spectrum_analytic": ("omega", S_an),
            "filtered_logneg": ("bandwidth", np.array(en)),
        },
        coords=dict(omega=("omega", w), bandwidth=("bandwidth", bandwidths),
                    trajectory=("trajectory", np.arange(records.shape[0], dtype=np.int32)),
                    **time_coordinates(np.arange(records.shape[-1]) * s.dt, wm)),
        attrs=dict(filter_center=filter_center, mode=mode, theta=theta),
    )
    set_time_reference(ds, wm)
    return apply_catalogue(ds, title="sde_com detector's view")
