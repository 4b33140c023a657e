"""Single-cavity optomechanics: one driven optical mode a, one mechanical mode (q, p), the standard system of
Vitali et al., Phys. Rev. Lett. 98, 030405 (2007), doi:10.1103/PhysRevLett.98.030405, and Genes et al.,
Phys. Rev. A 78, 032316 (2008), doi:10.1103/PhysRevA.78.032316.

H = ħΔ₀ a†a + ħω_m (p² + q²)/2 − ħ√2 g₀ a†a q + iħε(a† − a) in the frame of the laser, q, p dimensionless
([q, p] = i), with Langevin equations (Vitali's Eqs. (2)–(4)) for the amplitude decay rate κ, the Brownian
mechanical bath at rate γ_m and temperature T (D_pp = γ_m(2n̄ + 1), the bath of this project's resonator), and
the optical vacuum input (D = κ on each optical quadrature). It is the spinning resonator's driven mode with
no backscattering and no spin: the mean field and A come from the resonator's functions (``steady_branches``
with J = 0, whose quintic is then the cubic y(1 + (Δ₀/κ − y)²) = k times a positive quadratic, so every real
root is a branch of the cubic; ``drift_matrix`` restricted to (X, Y, q, p)).

Parameters are those of the papers: the detuning (in units of ω_m), input power, wavelength, κ, ω_m, γ_m, g₀
and T. The detuning is the bare Δ₀ = ω_c − ω_l (``detuning_kind = "bare"``, the default: every branch of the
cubic) or the effective Δ = Δ₀ − √2 g₀ q_s that the papers plot against (``"effective"``: the mean field is
then explicit, α_s = ε/(κ + iΔ), one branch, and Δ₀ = Δ + G₀ q_s an output). The effective detuning, the bare
one and the optomechanical coupling G = 2 g₀ |α_s| (Vitali's G = √2 G₀ α_s with G₀ = √2 g₀) are outputs
(``mean_field``).
Conventions: docs/single-cavity.md maps each paper's symbols to these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from sde_com.physics.resonator.device import HBAR, cavity_frequency, thermal_occupation
from sde_com.physics.resonator.drift import diffusion_matrix, drift_matrix
from sde_com.physics.resonator.steady import steady_branches
from sde_com.physics.system import Branch, LinearSystem, MeanFieldDynamics
from sde_com.spec import Key

_ROWS = [0, 1, 4, 5]  # (X, Y) of the resonator's driven mode U and its mechanics (q, p)
TWO_PI = 2.0 * math.pi


def _rate(name: str, doc: str, default: float) -> Key:
    return Key(name, "number", doc, "rad/s", default, minimum=0.0, exclusive_minimum=True, forms=("list", "range"))


# defaults: the Fabry–Pérot micromirror of Vitali et al. 2007 (docs/single-cavity.md), ω_m/2π = 10 MHz,
# Q_m = 1e5, m = 5 ng, L = 1 mm, F = 1.07e4, λ = 810 nm, P = 50 mW, T = 0.4 K, and their κ = πc/(FL)
_OMEGA_M = TWO_PI * 10e6
_WAVELENGTH = 810e-9
_LENGTH, _FINESSE, _MASS = 1e-3, 1.07e4, 5e-12
_KAPPA = math.pi * 299_792_458.0 / (_FINESSE * _LENGTH)  # Vitali's κ = πc/(FL), used as the amplitude decay rate
_G0 = float(cavity_frequency(_WAVELENGTH)) / _LENGTH * math.sqrt(HBAR / (2.0 * _MASS * _OMEGA_M))  # (ω_c/L)x_zpf


class SingleCavity(LinearSystem):
    """One driven optical mode and one mechanical mode (module docstring); ω_ref = ω_m. Defaults: the
    Fabry–Pérot micromirror (the comment above ``_OMEGA_M``) at the bare detuning Δ₀ = ω_m (set
    detuning_kind = "effective" for the papers' axis; Vitali et al.'s Fig. 2 point is Δ = ω_m). Its output port:
    the optical mode at κ (``output_ports``)."""

    name = "single_cavity"
    references = ("Vitali et al., Phys. Rev. Lett. 98, 030405 (2007), doi:10.1103/PhysRevLett.98.030405; Genes et "
                  "al., Phys. Rev. A 78, 032316 (2008), doi:10.1103/PhysRevA.78.032316")
    reference_symbol = "ω_m"
    modes = ("a", "m")
    quadratures = ("X", "Y", "q", "p")
    capabilities = frozenset({"output_ports", "mean_field_dynamics"})
    mean_field_variables = ("photons", "coupling", "displacement", "detuning_effective", "detuning_bare")
    parameters = MappingProxyType({k.name: k for k in (
        Key("detuning", "number", "detuning of the cavity from the laser in units of ω_m: the bare Δ₀/ω_m = "
            "(ω_c − ω_l)/ω_m, or the effective Δ/ω_m (detuning_kind)", "1", 1.0, forms=("list", "range")),
        Key("detuning_kind", "string", "what `detuning` gives: 'bare' Δ₀ (every branch of the mean-field cubic) or "
            "'effective' Δ = Δ₀ − √2 g₀ q_s (the papers' axis; one branch)", default="bare",
            choices=("bare", "effective")),
        Key("power", "number", "input laser power P", "W", 0.05, minimum=0.0, forms=("list", "range")),
        Key("wavelength", "number", "laser wavelength λ (photon energy ħω_l = 2πħc/λ)", "m", _WAVELENGTH,
            minimum=0.0, exclusive_minimum=True, forms=("list", "range")),
        _rate("kappa", "optical amplitude decay rate κ (half the linewidth; πc/(2FL) for a Fabry–Pérot of finesse "
              "F; the default is Vitali et al.'s value πc/(FL), docs/single-cavity.md)", _KAPPA),
        _rate("omega_m", "mechanical angular frequency ω_m", _OMEGA_M),
        _rate("gamma_m", "mechanical damping rate γ_m = ω_m/Q_m", _OMEGA_M / 1e5),
        Key("g0", "number", "single-photon coupling g₀ = (ω_c/L)·x_zpf, x_zpf = sqrt(ħ/(2mω_m))", "rad/s", _G0,
            minimum=0.0, forms=("list", "range")),
        Key("temperature", "number", "mechanical bath temperature T", "K", 0.4, minimum=0.0,
            forms=("list", "range")),
    )})

    def reference_rate(self, params: Mapping[str, object]) -> float:
        """ω_m, rad/s."""
        return float(self.resolve(params)["omega_m"])

    def _rates(self, params: Mapping[str, object]) -> dict[str, float]:
        """κ, ω_m, γ_m, G₀ = √2 g₀ (per dimensionless q), ε = sqrt(2κP/(ħω_l)), n̄ and Δ (bare or effective, rad/s)."""
        p = {k: float(v) for k, v in self.resolve(params).items() if k != "detuning_kind"}
        omega_l = float(cavity_frequency(p["wavelength"]))
        return dict(kappa=p["kappa"], omega_m=p["omega_m"], gamma_m=p["gamma_m"], G0=math.sqrt(2.0) * p["g0"],
                    epsilon=math.sqrt(2.0 * p["kappa"] * p["power"] / (HBAR * omega_l)),
                    n_thermal=float(thermal_occupation(p["omega_m"], p["temperature"])),
                    delta=p["detuning"] * p["omega_m"])

    def branches(self, params: Mapping[str, object]) -> list[Branch]:
        """Every mean-field steady state (Vitali's: q_s = G₀|α_s|²/ω_m, α_s = ε/(κ + iΔ), Δ = Δ₀ − G₀q_s) with A
        and D (rad/s) of the fluctuations: for a bare Δ₀ every real root of the cubic, ascending in q_s; for an
        effective Δ the one explicit solution.

        mean_field: q_s, alpha (complex, photons = |α|²), delta_eff (Δ, rad/s), delta_bare (Δ₀, rad/s),
        coupling (G = √2 G₀|α_s|, rad/s).
        """
        r = self._rates(params)
        if self.resolve(params)["detuning_kind"] == "effective":
            alpha = r["epsilon"] / complex(r["kappa"], r["delta"])
            q_s = r["G0"] * abs(alpha) ** 2 / r["omega_m"]
            states = [dict(q_s=q_s, alpha_u=alpha, delta_u_eff=r["delta"])]
        else:
            states = steady_branches(r["delta"], r["delta"], 0.0, r["kappa"], r["G0"], r["epsilon"],
                                     r["omega_m"])
        D = diffusion_matrix(r["kappa"], r["gamma_m"], r["n_thermal"])[np.ix_(_ROWS, _ROWS)]
        out = []
        for i, b in enumerate(states):
            G = math.sqrt(2.0) * r["G0"] * b["alpha_u"]
            A = drift_matrix(r["kappa"], b["delta_u_eff"], b["delta_u_eff"], 0.0, G, 0.0, r["omega_m"],
                             r["gamma_m"])[np.ix_(_ROWS, _ROWS)]
            mean_field = dict(q_s=b["q_s"], alpha=b["alpha_u"], delta_eff=b["delta_u_eff"],
                              delta_bare=b["delta_u_eff"] + r["G0"] * b["q_s"], coupling=abs(G))
            out.append(Branch(i, MappingProxyType(mean_field), A, D.copy()))
        return out

    def mean_field_outputs(self, mean_field: Mapping[str, complex | float],
                           params: Mapping[str, object]) -> dict[str, float]:
        """|α_s|², |G|/ω_m, q_s, Δ/ω_m and Δ₀/ω_m of a branch (``branches``' mean_field)."""
        wm = self.reference_rate(params)
        return dict(photons=abs(mean_field["alpha"]) ** 2, coupling=mean_field["coupling"] / wm,
                    displacement=mean_field["q_s"], detuning_effective=mean_field["delta_eff"] / wm,
                    detuning_bare=mean_field["delta_bare"] / wm)

    def mean_field_dynamics(self, params: Mapping[str, object]) -> MeanFieldDynamics:
        """Vitali's mean-field equations (their Eqs. (2)–(4) without noise) in τ = ω_m t, for the state
        z = (Re x, Im x, y, P) with x = α ω_m/ε, y = G₀q/ω_m, P = G₀p/ω_m (the resonator's scaling, J = 0):
            ẋ = −(iΔ₀/ω_m + κ/ω_m − iy) x + s,   ẏ = P,   Ṗ = −y − (γ_m/ω_m) P + (G₀²ε²/ω_m⁴)|x|²,
        with the bare Δ₀ (for detuning_kind = "effective", that of the one branch). s: the drive envelope.
        """
        r = self._rates(params)
        wm, eps, G0 = r["omega_m"], r["epsilon"], r["G0"]
        first = self.branches(params)[0]
        k, g, d0 = r["kappa"] / wm, r["gamma_m"] / wm, first.mean_field["delta_bare"] / wm
        c = G0**2 * eps**2 / wm**4
        coupling = math.sqrt(2.0) * G0 * eps / wm**2  # G/ω_m = coupling · x
        drive = 1.0 if eps > 0.0 else 0.0  # P = 0: no drive (the scale ω_m/ε of x is then moot)
        scale = wm / eps if eps > 0.0 else 0.0

        def rhs(tau, z, s=1.0):
            x, y, P = complex(z[0], z[1]), z[2], z[3]
            dx = -(1j * d0 + k) * x + 1j * y * x + drive * s
            return np.array([dx.real, dx.imag, P, -y - g * P + c * abs(x) ** 2])

        def drift(z):
            x, y = complex(z[0], z[1]), float(z[2])
            return drift_matrix(k, d0 - y, d0 - y, 0.0, coupling * x, 0.0, 1.0, g)[np.ix_(_ROWS, _ROWS)]

        def steady_state(branch):
            x = branch.mean_field["alpha"] * scale
            return np.array([x.real, x.imag, G0 * branch.mean_field["q_s"] / wm, 0.0])

        def observables(z):
            q = z[2] * wm / G0 if G0 > 0.0 else np.zeros_like(z[2])  # g₀ = 0: nothing pushes the mirror
            return {"photons": (eps / wm) ** 2 * (z[0] ** 2 + z[1] ** 2), "displacement": q}

        return MeanFieldDynamics(rhs, drift, steady_state, observables)

    def output_ports(self, params: Mapping[str, object]) -> dict[str, float]:
        """The optical mode leaks into the detected port at κ (input–output a_out = √(2κ) a − a_in)."""
        return {"a": float(self.resolve(params)["kappa"])}

    def thermal_covariance(self, params: Mapping[str, object]) -> np.ndarray:
        """Optical vacuum and the mechanics at its bath's occupation: diag(½, ½, n̄ + ½, n̄ + ½)."""
        n = self._rates(params)["n_thermal"]
        return np.diag([0.5, 0.5, n + 0.5, n + 0.5])
