"""The spinning optomechanical resonator (Jiao et al., PRL 125, 143605 (2020)) as a ``LinearSystem``.

Modes (U, V, m): the driven and the reflected optical mode and the mechanics; quadratures (xU, yU, xV, yV,
q, p). Parameters: the detuning Δ_c/ω_m, the input direction, and every ``Device`` parameter (Eq. (1)).
Branches: the real roots of Eq. (7) (``steady``), drift A of Eq. (6) and diffusion D (``drift``);
ω_ref = ω_m. Its vectorized steady-state chain (``SpinningResonator.steady_chain``, the numba kernel of
``chain``) is the fast path of ``sde_com.results.sweep``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from sde_com.errors import UserError
from sde_com.kernels.wigner import run_truncated_wigner
from sde_com.physics.resonator.chain import run_chain
from sde_com.physics.resonator.device import (
    DEVICE_PARAMETERS,
    DIRECTIONS,
    PARAMETER_BOUNDS,
    PARAMETER_INFO,
    Device,
    decay_rate,
    drive_amplitude,
    mode_detunings,
    sagnac_shift,
    single_photon_coupling,
    thermal_occupation,
)
from sde_com.physics.resonator.drift import QUADRATURES, diffusion_matrix, drift_matrix, fill_drift_matrix
from sde_com.physics.resonator.steady import steady_branches
from sde_com.physics.system import Branch, LinearSystem, MeanFieldDynamics, register_system
from sde_com.spec import Key

REFERENCES = "Jiao et al., Phys. Rev. Lett. 125, 143605 (2020), doi:10.1103/PhysRevLett.125.143605"


def _model_keys() -> tuple[Key, ...]:
    """detuning and direction, then every Device parameter (unit, name, range, default from device)."""
    keys = [Key("detuning", "number", PARAMETER_INFO["detuning"][1], "1", 1.0, forms=("list", "range")),
            Key("direction", "string", PARAMETER_INFO["direction"][1], "", "ccw", choices=DIRECTIONS,
                forms=("list",))]
    device = Device()
    for name in DEVICE_PARAMETERS:
        unit, doc = PARAMETER_INFO[name]
        op, bound = PARAMETER_BOUNDS.get(name, (None, None))
        keys.append(Key(name, "number", doc, unit or "1", getattr(device, name), minimum=bound,
                        exclusive_minimum=op == ">", forms=("list", "range")))
    return tuple(keys)


def device_of(params: Mapping[str, object]) -> Device:
    """The ``Device`` of a full parameter mapping (``SpinningResonator.resolve``)."""
    return Device(**{name: params[name] for name in DEVICE_PARAMETERS})


def chain_inputs(full: Mapping[str, np.ndarray], start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
    """Flat rate arrays (rad/s) for the chain kernel from broadcast parameter arrays (Eq. (1), Eq. (7)), of the
    flat grid points [start, stop) (C order; default all). Only those points are gathered, so a block of a
    large grid costs memory in proportion to the block; every rate is an elementwise function of the
    point's parameters, so a block's values equal the whole grid's bitwise."""
    gather = _flat_points(full, start, stop)
    p = {k: gather(v) for k, v in full.items()}
    delta_c = p["detuning"] * p["omega_m"]
    shift = sagnac_shift(p["Omega"], p["refractive_index"], p["radius"], p["wavelength"], p["dn_dlambda"])
    sign = np.where(p["direction"] == "ccw", 1.0, -1.0)
    return dict(
        kappa=decay_rate(p["wavelength"], p["quality_factor"]) * np.ones_like(delta_c),
        delta_u=delta_c + sign * shift,
        delta_v=delta_c - sign * shift,
        J=p["J"] * np.ones_like(delta_c),
        G0=single_photon_coupling(p["wavelength"], p["radius"], p["mass"], p["omega_m"]) * np.ones_like(delta_c),
        epsilon=drive_amplitude(p["wavelength"], p["quality_factor"], p["power"]) * np.ones_like(delta_c),
        omega_m=p["omega_m"] * np.ones_like(delta_c),
        gamma_m=p["gamma_m"] * np.ones_like(delta_c),
        n_thermal=thermal_occupation(p["omega_m"], p["temperature"]) * np.ones_like(delta_c),
        sagnac_shift=shift * np.ones_like(delta_c),
    )


def _flat_points(full: Mapping[str, np.ndarray], start: int, stop: int | None):
    """A function giving values.ravel()[start:stop] of any broadcast grid array of ``full``, without
    materializing the grid (a value constant over the grid, stride 0 on every axis, is not gathered)."""
    shape = np.shape(next(iter(full.values()))) if full else ()
    size = int(np.prod(shape))
    stop = size if stop is None else stop
    index = np.unravel_index(np.arange(start, stop), shape) if len(shape) > 1 else None

    def gather(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        if values.ndim <= 1:
            return np.ravel(values)[start:stop]
        if not any(values.strides):
            return np.full(stop - start, values.flat[0], dtype=values.dtype)
        return values[index]

    return gather


def _point_text(full: Mapping[str, np.ndarray], k: int) -> str:
    """The parameters of flat grid point ``k``, as a message names them (``name = value, ...``)."""
    gather = _flat_points(full, k, k + 1)
    return ", ".join(f"{name} = {gather(v)[0]:g}" if np.asarray(v).dtype.kind == "f" else f"{name} = {gather(v)[0]}"
                     for name, v in full.items())


def _fails(inp: dict[str, np.ndarray]) -> bool:
    try:
        run_chain(inp, store_cov=False)
    except ArithmeticError:
        return True
    return False


@register_system
class SpinningResonator(LinearSystem):
    """The spinning whispering-gallery resonator: two counter-propagating optical modes and one mechanical
    mode, Eqs. (1)–(7) of the paper (docs/physics.md); ω_ref = ω_m."""

    name = "spinning_resonator"
    modes = ("U", "V", "m")
    quadratures = QUADRATURES
    parameters = MappingProxyType({k.name: k for k in _model_keys()})
    capabilities = frozenset({"mean_field_dynamics", "output_ports", "truncated_wigner"})
    mean_field_variables = ("photons", "photons_reflected", "coupling", "coupling_reflected", "displacement")
    reported_pair = (0, 2)  # E_N of the driven mode U and the mechanics, Eq. (12)
    catalogue_words = True
    references = REFERENCES
    reference_symbol = "ω_m"
    kernel_modules = ("physics.resonator.steady", "physics.linear", "physics.gaussian", "physics.resonator.chain")
    compile_aside = "sde_com.physics.resonator.chain:compile_callees"

    def parameter_values(self, name: str, value) -> tuple[np.ndarray, bool]:
        """As ``LinearSystem.parameter_values``, with ``Device``'s checks (its message names the field and its
        allowed range) and the direction's choices."""
        is_dim = not np.isscalar(value) and not isinstance(value, str)
        values = np.atleast_1d(np.asarray(list(value) if is_dim and not isinstance(value, np.ndarray) else value))
        if values.ndim != 1 or values.size == 0:
            raise UserError(f"{name} must be a scalar or a non-empty 1-D sequence")
        if name == "direction":
            for v in values:
                if v not in DIRECTIONS:
                    raise UserError(f"direction must be one of {DIRECTIONS}, got {str(v)!r}")
            return values.astype(str), is_dim
        if values.dtype.kind not in "iuf" or values.dtype == bool:
            raise UserError(f"{name} must be a real number or a sequence of them, got {value!r}")
        values = values.astype(float)
        if not np.all(np.isfinite(values)):
            raise UserError(f"{name} must be finite, got {value!r}")
        if name != "detuning":
            for v in np.unique(values):
                Device(**{name: float(v)})  # raises ValueError naming the field and its allowed range
        return values, is_dim

    def mean_field_outputs(self, mean_field: Mapping[str, complex | float],
                           params: Mapping[str, object]) -> dict[str, float]:
        """|α_U|², |α_V|², the couplings √2 G₀|α_j|/ω_m and q_s of a branch of Eq. (7) (its sweep writes the same
        from its chain, ``sweep.chain_variables``)."""
        device = device_of(self.resolve(params))
        g = math.sqrt(2.0) * device.G0 / device.omega_m
        au, av = mean_field["alpha_u"], mean_field["alpha_v"]
        return dict(photons=abs(au) ** 2, photons_reflected=abs(av) ** 2, coupling=g * abs(au),
                    coupling_reflected=g * abs(av), displacement=mean_field["q_s"])

    def truncated_wigner_model(self, params: Mapping[str, object], branch: int) -> dict:
        """The rates of ``kernels.wigner.run_truncated_wigner`` (units of ω_m) and the nonlinear drift's fixed
        point at ``branch``: the Wigner mean of α is the mean field; the force's −1/2 per mode shifts q_s by
        G₀/ω_m, kept exact by starting (and measuring) about the fixed point."""
        params = self.resolve(params)
        device = device_of(params)
        branches = self.branches(params)
        if not 0 <= branch < len(branches):
            raise UserError(f"wigner.branch = {branch} does not exist: this operating point has {len(branches)} "
                            f"mean-field branch(es), 0 .. {len(branches) - 1}")
        b = branches[branch]
        wm = device.omega_m
        du, dv = mode_detunings(params["detuning"] * wm, device.sagnac_shift, params["direction"])
        rates = np.array([du / wm, dv / wm, device.kappa / wm, device.J / wm, device.G0 / wm, device.epsilon / wm,
                          device.gamma_m / wm, 2.0 * device.n_thermal + 1.0])
        au, av = b.mean_field["alpha_u"], b.mean_field["alpha_v"]
        reference = np.array([au.real, au.imag, av.real, av.imag, b.mean_field["q_s"], 0.0])

        def initial(u0):  # complex amplitudes α = (x + iy)/√2 about the mean field; the mechanics as it is
            state0 = np.empty_like(u0)
            state0[:, :4] = reference[:4] + u0[:, :4] / math.sqrt(2.0)
            state0[:, 4:] = reference[4:] + u0[:, 4:]
            return state0

        def run(state0, seed, first, n_steps, dt, burn_in_steps):
            return run_truncated_wigner(rates, state0, reference, seed, first, n_steps, dt, burn_in_steps)

        return dict(branch=b, photons=abs(au) ** 2, initial=initial, run=run)

    def reference_rate(self, params: Mapping[str, object]) -> float:
        """ω_m, rad/s."""
        return device_of(self.resolve(params)).omega_m

    def branches(self, params: Mapping[str, object]) -> list[Branch]:
        """Every real branch of Eq. (7), ascending in q_s, with A of Eq. (6) and D (rad/s).

        mean_field: q_s, alpha_u, alpha_v (complex, photons = |α|²), delta_u_eff, delta_v_eff (Δ̃_j, rad/s).
        """
        params = self.resolve(params)
        device = device_of(params)
        kappa, omega_m = device.kappa, device.omega_m
        delta_u, delta_v = mode_detunings(params["detuning"] * omega_m, device.sagnac_shift, params["direction"])
        D = diffusion_matrix(kappa, device.gamma_m, device.n_thermal)
        g = math.sqrt(2.0) * device.G0
        out = []
        for i, b in enumerate(steady_branches(delta_u, delta_v, device.J, kappa, device.G0, device.epsilon,
                                              omega_m)):
            A = drift_matrix(kappa, b["delta_u_eff"], b["delta_v_eff"], device.J, g * b["alpha_u"],
                             g * b["alpha_v"], omega_m, device.gamma_m)
            out.append(Branch(i, MappingProxyType(dict(b)), A, D.copy()))
        return out

    def thermal_covariance(self, params: Mapping[str, object]) -> np.ndarray:
        """Optical vacuum and the mechanics at its bath's occupation n_m: diag(½, ½, ½, ½, n_m + ½, n_m + ½)."""
        n_thermal = device_of(self.resolve(params)).n_thermal
        return np.diag([0.5, 0.5, 0.5, 0.5, n_thermal + 0.5, n_thermal + 0.5])

    def steady_chain(self, full: Mapping[str, np.ndarray], start: int, stop: int,
                     store_cov: bool = True) -> dict[str, np.ndarray]:
        """The vectorized steady state (Eqs. (6), (7), (11)–(13)) of the grid points [start, stop) (C order).

        ``full``: every parameter's values broadcast over the grid (``sweep.parameter_grid``, validated).
        Returns the raw outputs of ``chain.run_chain``, their branch axis cut to the block's most branches
        (at least 1), and the rates kappa, G0, omega_m, sagnac_shift of those points (rad/s). Each point runs
        on its own, so blocks joined in order (padded to the most branches) equal the whole grid bitwise.
        """
        inp = chain_inputs(full, start, stop)
        finite = np.logical_and.reduce([np.isfinite(v) for v in inp.values()])
        if not finite.all():
            k = int(np.flatnonzero(~finite)[0])
            rates = [name for name, v in inp.items() if not np.isfinite(v[k])]
            raise UserError(f"at ({_point_text(full, start + k)}) the derived quantities {rates} overflow: the "
                            "parameters are outside the range where the model can be computed")
        try:
            out = run_chain(inp, store_cov=store_cov)
        except ArithmeticError as exc:  # overflow or underflow inside the chain: find the point
            k = next((k for k in range(stop - start) if _fails({n: v[k:k + 1] for n, v in inp.items()})), 0)
            why = "a rate underflows to zero" if isinstance(exc, ZeroDivisionError) else "a rate overflows"
            raise UserError(f"at ({_point_text(full, start + k)}) the steady state cannot be computed ({why}): the "
                            "parameters are outside the range where the model can be computed") from None
        n_b = max(1, int(out["n_branches"].max(initial=0)))
        out = {k: (v[:, :n_b] if v.ndim > 1 else v) for k, v in out.items()}
        out.update({k: inp[k] for k in ("kappa", "G0", "omega_m", "sagnac_shift")})
        return out

    def output_ports(self, params: Mapping[str, object]) -> dict[str, float]:
        """Both optical modes leak into the detected port at κ (input–output a_out = √(2κ) a − a_in)."""
        kappa = device_of(self.resolve(params)).kappa
        return {"U": kappa, "V": kappa}

    def mean_field_dynamics(self, params: Mapping[str, object]) -> MeanFieldDynamics:
        """Eq. (3) without noise in τ = ω_m t, for the state z = (Re x_U, Im x_U, Re x_V, Im x_V, y, P) with
        x_j = α_j ω_m/ε, y = G₀q/ω_m (docs/physics.md):
            ẋ_U = −(iΔ_U/ω_m + κ/ω_m − iy) x_U − i(J/ω_m) x_V + s,   ẋ_V = −(iΔ_V/ω_m + κ/ω_m − iy) x_V − i(J/ω_m) x_U,
            ẏ = P,   Ṗ = −y − (γ_m/ω_m) P + (G₀²ε²/ω_m⁴)(|x_U|² + |x_V|²).
        """
        params = self.resolve(params)
        dev = device_of(params)
        wm, eps = dev.omega_m, dev.epsilon
        du, dv = mode_detunings(params["detuning"] * wm, dev.sagnac_shift, params["direction"])
        du, dv, k, j, g = du / wm, dv / wm, dev.kappa / wm, dev.J / wm, dev.gamma_m / wm
        c = dev.G0**2 * eps**2 / wm**4
        coupling = math.sqrt(2.0) * dev.G0 * eps / wm**2  # G_j/ω_m = coupling · x_j
        drive = 1.0 if eps > 0.0 else 0.0  # P = 0: no drive (the scale ω_m/ε of x_j is then moot)
        scale = wm / eps if eps > 0.0 else 0.0

        def rhs(tau, z, s=1.0):
            xu, xv, y, P = complex(z[0], z[1]), complex(z[2], z[3]), z[4], z[5]
            dxu = -(1j * du + k) * xu - 1j * j * xv + 1j * y * xu + drive * s
            dxv = -(1j * dv + k) * xv - 1j * j * xu + 1j * y * xv
            return np.array([dxu.real, dxu.imag, dxv.real, dxv.imag, P, -y - g * P + c * (abs(xu) ** 2
                                                                                          + abs(xv) ** 2)])

        def drift(z):
            A = np.empty((6, 6))
            xu, xv, y = complex(z[0], z[1]), complex(z[2], z[3]), float(z[4])
            fill_drift_matrix(A, k, du - y, dv - y, j, coupling * xu, coupling * xv, 1.0, g)
            return A

        def steady_state(branch):
            xu, xv = branch.mean_field["alpha_u"] * scale, branch.mean_field["alpha_v"] * scale
            y = dev.G0 * branch.mean_field["q_s"] / wm
            return np.array([xu.real, xu.imag, xv.real, xv.imag, y, 0.0])

        def observables(z):
            return {"photons": (eps / wm) ** 2 * (z[0] ** 2 + z[1] ** 2),
                    "photons_reflected": (eps / wm) ** 2 * (z[2] ** 2 + z[3] ** 2),
                    "displacement": z[4] * wm / dev.G0}

        return MeanFieldDynamics(rhs, drift, steady_state, observables)
