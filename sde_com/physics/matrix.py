"""A linear quantum Langevin system given by its matrices: du = A u dt + dW, E[dW dWᵀ] = D dt.

The scenario's [system] table and ``sde_com.MatrixSystem`` in Python: N named modes, the drift A and the
diffusion D (2N × 2N, rows and columns in (x, p) pairs per mode in the order the modes are listed; rates in
s⁻¹; vacuum variance 1/2, so a mode whose amplitude decays at κ/2 into a vacuum bath has D = κ/2 on each
quadrature), and
``time_scale``, ω_ref, the unit of every run time (issue 6's time rule). It has one branch (no mean field),
no parameters to sweep, no thermal state and no nonlinear mean-field dynamics: drives and the truncated-Wigner
check need a parametrised system (``physics.system.LinearSystem``). Optional ``outputs`` (mode → decay rate
κ into its detected port, s⁻¹) give it output ports (capability ``"output_ports"``: spectra, filtered output
modes, [detect]); D must hold each port's vacuum input noise (``spectra.port_noise``).

Checked when made (``check_matrices``, UserError naming the matrix and the fault): square 2N × 2N finite
matrices; D symmetric to 1e-12 × max|D| with no eigenvalue below −1e-12 × max|D| (E[dW dWᵀ] is a
covariance); A stable (every eigenvalue Re λ < 0, the Routh–Hurwitz decision of ``decide_stability``)
unless ``allow_unstable``. A Lyapunov solution that violates the uncertainty relation V + iΩ/2 ≥ 0 is
warned of (``RunWarning``), not refused: D itself need not satisfy D + iΩ-type conditions (the Brownian
mechanical bath of this project and of Vitali et al. 2007, a D with noise on p only, does not).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from sde_com.errors import RunWarning, UserError
from sde_com.physics.gaussian import is_physical
from sde_com.physics.linear import lyapunov_covariance_reference
from sde_com.physics.spectra import port_noise
from sde_com.physics.stability import decide_stability
from sde_com.physics.system import Branch, LinearSystem, require
from sde_com.spec import Key, make_table

SYMMETRY_TOLERANCE = 1e-12  # of max|D|: rounding of a D written out by hand or computed in float64
MODE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a mode name becomes part of quadrature and pair labels


def _matrix(name: str, value, size: int, modes: Sequence[str]) -> np.ndarray:
    """``value`` as a finite float size × size matrix; UserError naming ``name`` otherwise."""
    what = f"{size} × {size} (2N × 2N for the N = {size // 2} modes {list(modes)})"
    try:
        M = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise UserError(f"system.{name} must be a {what} matrix of numbers (a list of rows), got "
                        f"{str(value)[:80]}") from None
    if M.ndim != 2 or M.shape != (size, size):
        raise UserError(f"system.{name} must be {what}, got shape {M.shape}")
    bad = np.argwhere(~np.isfinite(M))
    if bad.size:
        i, j = bad[0]
        raise UserError(f"system.{name}[{i}][{j}] is {M[i, j]}: every entry must be a finite number")
    return M


MODULATION_MATRICES = ("drift_cos", "drift_sin", "diffusion_cos", "diffusion_sin")
MODULATION = make_table(
    "modulation", "A periodic modulation of a [system] given by its matrices (`[system.modulation]`, or an inline "
                  "table): A(t) = drift + drift_cos cos Ωt + drift_sin sin Ωt, and likewise D(t), which must stay "
                  "positive semidefinite over the period (checked at 1024 phases). Run it with [periodic] (its "
                  "periodic state) or a [simulate] transient.",
    Key("frequency", "number", "Ω, the modulation's angular frequency", "s-1", minimum=0.0, exclusive_minimum=True),
    Key("drift_cos", "matrix", "A_c, 2N × 2N (absent: zero), s-1"),
    Key("drift_sin", "matrix", "A_s, 2N × 2N (absent: zero), s-1"),
    Key("diffusion_cos", "matrix", "D_c, 2N × 2N, symmetric (absent: zero), s-1"),
    Key("diffusion_sin", "matrix", "D_s, 2N × 2N, symmetric (absent: zero), s-1"),
)
MODULATION_KEY = Key("modulation", "table", "a periodic modulation of the matrices (keys below); run with "
                                            "[periodic] or a [simulate] transient", items=MODULATION)


def _check_modulation(table: Mapping, A: np.ndarray, D: np.ndarray):
    """``[system] modulation`` → a ``floquet.Modulation`` (rad/s): its keys, a frequency, 2N × 2N matrices,
    symmetric diffusion parts and D(t) positive semidefinite over the period; UserError naming the key."""
    from sde_com.physics.floquet import Modulation, check_diffusion
    from sde_com.spec import check_items

    table = dict(check_items(MODULATION_KEY, dict(table) if isinstance(table, Mapping) else table,
                             "system.modulation"))
    if "frequency" not in table:
        raise UserError("system.modulation.frequency is needed: the modulation's angular frequency Ω (s-1)")
    d = A.shape[0]
    parts = {}
    for k in MODULATION_MATRICES:
        M = np.asarray(table.get(k, np.zeros((d, d))), dtype=float)
        if M.shape != (d, d):
            raise UserError(f"system.modulation.{k} must be {d} × {d} (the matrices' size), got "
                            f"{' × '.join(map(str, M.shape))}")
        if k.startswith("diffusion") and not np.allclose(M, M.T, rtol=0, atol=1e-12 * max(np.abs(M).max(), 1)):
            raise UserError(f"system.modulation.{k} must be symmetric (a diffusion)")
        parts[k] = M
    mod = Modulation(float(table["frequency"]), A, parts["drift_cos"], parts["drift_sin"], D, parts["diffusion_cos"],
                     parts["diffusion_sin"])
    check_diffusion(mod)
    return mod


def check_matrices(modes: Sequence[str], drift, diffusion,
                   time_scale: float) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(modes, A, D) validated as the module docstring says (A's stability: ``MatrixSystem``); UserError naming
    the matrix and the fault."""
    if isinstance(modes, str) or not isinstance(modes, Sequence) or len(modes) == 0:
        raise UserError(f"system.modes must be a non-empty list of mode names, got {modes!r}")
    for m in modes:
        if not isinstance(m, str) or not MODE_NAME.fullmatch(m):
            raise UserError(f"system.modes: {m!r} is not a mode name (a letter, then letters, digits or _)")
    if len(set(modes)) != len(modes):
        raise UserError(f"system.modes names a mode twice: {list(modes)}")
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) or not (
            np.isfinite(time_scale) and time_scale > 0):
        raise UserError(f"system.time_scale must be a finite rate > 0 (s-1), got {time_scale!r}")
    size = 2 * len(modes)
    A = _matrix("drift", drift, size, modes)
    D = _matrix("diffusion", diffusion, size, modes)
    scale = float(np.abs(D).max())
    asymmetry = float(np.abs(D - D.T).max())
    if asymmetry > SYMMETRY_TOLERANCE * scale:
        i, j = np.unravel_index(np.argmax(np.abs(D - D.T)), D.shape)
        raise UserError(f"system.diffusion must be symmetric (E[dW dWᵀ] = D dt): D[{i}][{j}] = {D[i, j]:.6g} "
                        f"but D[{j}][{i}] = {D[j, i]:.6g}, beyond {SYMMETRY_TOLERANCE:g} × max|D|")
    D = 0.5 * (D + D.T)
    lowest = float(np.linalg.eigvalsh(D).min()) if scale > 0 else 0.0
    if lowest < -SYMMETRY_TOLERANCE * scale:
        raise UserError(f"system.diffusion must be positive semidefinite (a noise covariance): its smallest "
                        f"eigenvalue is {lowest:.6g}, below −{SYMMETRY_TOLERANCE:g} × max|D|")
    return tuple(modes), A, D


class MatrixSystem(LinearSystem):
    """A linear system given by its matrices (the [system] table): see the module docstring.

    ``MatrixSystem(modes=["a", "b"], drift=A, diffusion=D, time_scale=1.0)`` with A, D in s⁻¹ (lists of rows
    or arrays), ``time_scale`` ω_ref in s⁻¹. It runs wherever a ``LinearSystem`` does
    (``sde_com.sweep(system=...)``, ``sde_com.simulate(settings, system=...)``).
    """

    name = "matrix"
    parameters = MappingProxyType({})
    capabilities = frozenset()

    def __init__(self, modes: Sequence[str], drift, diffusion, time_scale: float | None = None,
                 allow_unstable: bool = False, outputs: Mapping[str, float] | None = None,
                 modulation: Mapping | None = None):
        if time_scale is None:  # the system's own fastest rate: dt = 0.1 then resolves its fastest motion
            time_scale = spectral_radius(np.asarray(drift, dtype=float)) if _square(drift) else 1.0
        self.modes, self.drift, self.diffusion = check_matrices(modes, drift, diffusion, time_scale)
        self.outputs = _check_outputs(outputs, self.modes, self.diffusion)  # a dict: it pickles for Dask workers
        self.modulation = None if modulation is None else _check_modulation(modulation, self.drift, self.diffusion)
        self.capabilities = frozenset({*(("output_ports",) if self.outputs else ()),
                                       *(("periodic",) if self.modulation is not None else ())})
        self.quadratures = tuple(f"{q}_{m}" for m in self.modes for q in ("x", "p"))
        self.time_scale = float(time_scale)
        self.allow_unstable = bool(allow_unstable)
        for M in (self.drift, self.diffusion):
            M.setflags(write=False)  # every run of the system reads these: no caller may change them
        if not decide_stability(self.drift, self.time_scale).stable:
            if not allow_unstable and modulation is None:  # a modulation's stability is its multipliers
                worst = float(np.linalg.eigvals(self.drift).real.max())
                raise UserError(f"system.drift is unstable (an eigenvalue of A has real part {worst:.6g} s-1 ≥ 0, "
                                "no steady state); set allow_unstable = true to run a transient anyway")
        elif not is_physical(lyapunov_covariance_reference(self.drift, self.diffusion)):
            warnings.warn("[system] the steady-state covariance V of drift and diffusion violates the uncertainty "
                          "relation V + iΩ/2 ≥ 0 (vacuum variance 1/2): not a quantum state; check the "
                          "diffusion's scale", RunWarning, stacklevel=2)

    capability_hints = MappingProxyType({
        "output_ports": "give [system] outputs (mode = decay rate into the detected port)",
        "periodic": "give [system] modulation (a frequency and the matrices' cos and sin parts)",
        "mean_field_dynamics": "it needs a parametrised system (its nonlinear mean-field dynamics): a [system] "
                               "table gives the linear matrices only",
        "truncated_wigner": "it needs a parametrised system with the nonlinear Langevin equations in a kernel (the "
                            "spinning resonator's): a [system] table gives the linear matrices only"})

    def reference_rate(self, params: Mapping[str, object]) -> float:
        """ω_ref = ``time_scale`` (s⁻¹)."""
        return self.time_scale

    def definition(self) -> dict:
        """Its matrices and rates (s⁻¹), everything ``MatrixSystem(**definition)`` needs, less the name."""
        return {"name": self.name, "modes": list(self.modes), "drift": self.drift.tolist(),
                "diffusion": self.diffusion.tolist(), "time_scale": self.time_scale,
                "allow_unstable": self.allow_unstable, **({"outputs": dict(self.outputs)} if self.outputs else {}),
                **({"modulation": self._modulation_table} if self.modulation is not None else {})}

    def periodic_modulation(self, params: Mapping[str, object]):
        """The modulation A(t), D(t) (``physics.floquet.Modulation``, rad/s)."""
        self.resolve(params)
        return self.modulation

    @property
    def _modulation_table(self) -> dict:
        m = self.modulation
        return {"frequency": m.frequency, **{k: getattr(m, k).tolist() for k in MODULATION_MATRICES}}

    def branches(self, params: Mapping[str, object]) -> list[Branch]:
        """The one branch: (A, D) as given (no mean field). A modulated system has none (its state is periodic:
        ``periodic_modulation``), so every steady-state or time-domain path refuses it here."""
        self.resolve(params)  # no parameters: refuses any
        if self.modulation is not None:
            raise UserError("system.modulation: a modulated system's steady state is periodic; compute it with "
                            "[periodic] (sde_com.periodic_sweep), not a constant-A run")
        return [Branch(0, MappingProxyType({}), self.drift, self.diffusion)]

    def output_ports(self, params: Mapping[str, object]) -> dict[str, float]:
        """Mode → decay rate into its detected port (s⁻¹), as given in ``outputs``."""
        if not self.outputs:
            require(self, "output_ports", "output ports")
        return dict(self.outputs)


def _square(M) -> bool:
    try:
        M = np.asarray(M, dtype=float)
    except (TypeError, ValueError):
        return False
    return M.ndim == 2 and M.shape[0] == M.shape[1] and M.size > 0 and bool(np.isfinite(M).all())


def spectral_radius(A: np.ndarray) -> float:
    """max |λ| over the eigenvalues λ of A (rad/s): a system's fastest rate, the default ω_ref of a system given
    by its matrices; 1 s⁻¹ for A = 0 (nothing moves)."""
    radius = float(np.abs(np.linalg.eigvals(A)).max())
    # rounded to 12 digits: LAPACK's last bits differ between CPUs, and ω_ref sets dt and goes into every file
    return float(f"{radius:.12g}") if radius > 0 else 1.0


def _check_outputs(outputs, modes: Sequence[str], D: np.ndarray) -> dict[str, float]:
    """``outputs`` (mode → κ) checked: known modes, finite rates > 0, each port's vacuum noise inside D."""
    if outputs is None:
        return {}
    if not isinstance(outputs, Mapping) or not outputs:
        raise UserError(f"system.outputs must be a non-empty table of mode = decay rate (s-1), got {outputs!r}")
    out = {}
    for mode, rate in outputs.items():
        if mode not in modes:
            raise UserError(f"system.outputs.{mode}: no such mode; modes: {list(modes)}")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (np.isfinite(rate) and rate > 0):
            raise UserError(f"system.outputs.{mode} must be a finite decay rate > 0 (s-1), got {rate!r}")
        try:
            port_noise(D, float(rate), modes.index(mode))
        except UserError as exc:
            raise UserError(f"system.outputs.{mode} = {rate!r}: {exc}") from None
        out[mode] = float(rate)
    return out
