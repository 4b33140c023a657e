"""Systems as physicists write them, built in Python: ladder operators, parameters and baths
(``sde_com.HamiltonianSystem``), and a converter from a QuTiP model.

>>> from sde_com.hamiltonian import brownian, dag, ladder, symbols, thermal
>>> a, b = ladder("a", "b")
>>> Delta, wm, G, kappa, gm, nth = symbols("Delta", "wm", "G", "kappa", "gm", "nth")
>>> H = -Delta * dag(a) * a + wm * dag(b) * b - G * (a + dag(a)) * (b + dag(b))
>>> str(H)
'((((-Delta)*dag(a))*a + (wm*dag(b))*b) - (G*(a + dag(a)))*(b + dag(b)))'

An ``Expression`` is the string of the Hamiltonian grammar (``physics.hamiltonian``) that its operations
write, parenthesised as built: ``HamiltonianSystem`` reads it as it reads a scenario's strings, with the same
checks, so a system built here and one written in a scenario file are the same system. Numbers are written
exactly (``repr``). The baths (``thermal``, ``squeezed``, ``brownian``, ``lindblad``) give the dissipator tables
of ``physics.hamiltonian.DISSIPATOR``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sde_com.errors import UserError
from sde_com.physics.hamiltonian import TIME, Expression, HamiltonianSystem, expression_text

__all__ = ["Expression", "brownian", "conj", "cos", "dag", "exp", "from_qutip", "ladder", "lindblad", "sin", "sqrt",
           "squeezed", "symbols", "thermal", "time"]


def ladder(*names: str) -> tuple[Expression, ...]:
    """The annihilators of the modes ``names`` (their ``modes``, in this order)."""
    return tuple(Expression(n, "mode") for n in names)


def symbols(*names: str) -> tuple[Expression, ...]:
    """Parameters by name (each needs its default in ``HamiltonianSystem(parameters=...)``)."""
    return tuple(Expression(n) for n in names)


def dag(mode: Expression) -> Expression:
    """a† of a mode from ``ladder``."""
    if not (isinstance(mode, Expression) and mode.op == "mode"):
        raise UserError(f"dag takes a mode from ladder(), got {mode!r}")
    return Expression(f"dag({mode.text})")


def _function(name: str):
    def apply(x) -> Expression:
        return Expression(f"{name}({expression_text(x)})", "call")

    apply.__name__ = name
    apply.__doc__ = f"{name}(x) of a parameter expression (the grammar's {name})."
    return apply


sqrt, exp, cos, sin, conj = (_function(n) for n in ("sqrt", "exp", "cos", "sin", "conj"))
time = Expression(TIME)  # the time t (s): coefficients periodic in it, cos(W*time), make a modulated system


def _value(x):
    """A rate, n or m: a number as it is (a scenario's TOML value), an expression as its string."""
    return str(x) if isinstance(x, Expression) else x


def thermal(mode: Expression | str, rate, n=0.0, port: bool = False) -> dict:
    """γ(n + 1) D[a] + γ n D[a†] (``rate`` γ: the energy decay rate); ``port``: the mode's detected output."""
    return {"kind": "thermal", "mode": str(mode), "rate": _value(rate), "n": _value(n), "port": port}


def squeezed(mode: Expression | str, rate, n, m) -> dict:
    """A squeezed bath of occupation n = ⟨b†b⟩ and ⟨bb⟩ = m, |m|² ≤ n(n + 1), at the energy rate ``rate``."""
    return {"kind": "squeezed", "mode": str(mode), "rate": _value(rate), "n": _value(n), "m": _value(m)}


def brownian(mode: Expression | str, rate, n) -> dict:
    """The quantum Brownian bath of a mechanical mode: drift −γ on p, diffusion γ(2n + 1) on p."""
    return {"kind": "brownian", "mode": str(mode), "rate": _value(rate), "n": _value(n)}


def lindblad(operator: Expression | str, rate) -> dict:
    """γ D[L] of a jump operator L linear in the ladder operators."""
    return {"kind": "lindblad", "operator": str(operator), "rate": _value(rate)}


# QuTiP ---------------------------------------------------------------------------------------------------

_GUARD = 2  # top Fock levels left out of the fit: a product not in normal order is wrong there when truncated


def from_qutip(hamiltonian, collapse_operators: Sequence = (), modes: Mapping[str, object] | None = None, *,
               ports: Sequence[str] = (), time_scale: float | None = None) -> HamiltonianSystem:
    """The ``HamiltonianSystem`` of a QuTiP model (``pip install 'sde_com[qutip]'``): a Hamiltonian ``Qobj``
    (ħ = 1, rad/s) and collapse operators (QuTiP's convention: c = √γ L, so that the master equation has
    D[c]), quadratic and linear in the mode annihilators ``modes`` (name → ``Qobj``, e.g. ``{"a":
    tensor(destroy(N), qeye(M))}``) in a Fock basis.

    Each operator is written as a normal-ordered polynomial in the ladder operators by a least-squares fit on
    the Fock states below the truncation's top ``_GUARD`` levels, where QuTiP's truncated products are exact;
    what the fit leaves (a term of degree three or more, or an operator that is not of the modes) is refused.
    Collapse operators ∝ a (rate γ↓) and ∝ a† (γ↑) of one mode become its thermal bath (rate γ↓ − γ↑,
    n = γ↑/(γ↓ − γ↑)), so that ``initial = "thermal"`` knows its occupation; any other, a ``lindblad`` one.
    ``ports``: modes whose vacuum bath (loss only) is their detected output port ([detect]).
    """
    try:
        import qutip  # noqa: F401  (the optional peer: its Qobj's full())
    except ImportError as exc:
        raise ImportError("from_qutip needs QuTiP: pip install 'sde_com[qutip]'") from exc
    if not modes:
        raise UserError("from_qutip: give modes, a mapping of mode names to their annihilation operators (Qobj)")
    names = list(modes)
    ops = [np.asarray(modes[n].full()) for n in names]
    basis = _FockFit(ops, names)
    h = basis.polynomial(np.asarray(hamiltonian.full()), "hamiltonian", max_degree=2)
    jumps = [basis.polynomial(np.asarray(c.full()), f"collapse_operators[{i}]", max_degree=1)
             for i, c in enumerate(collapse_operators)]
    dissipators = _dissipators(jumps, names)
    for name in ports:
        bath = next((d for d in dissipators if d["kind"] == "thermal" and d["mode"] == name), None)
        if bath is None or bath["n"] != 0:
            raise UserError(f"from_qutip: ports names {name!r}, which has no vacuum bath (collapse operators ∝ "
                            f"{name} alone, without gain)")
        bath["port"] = True
    return HamiltonianSystem(names, _poly_text(h, names) or "0", dissipators, {}, time_scale)


class _FockFit:
    """The normal-ordered monomials of the modes' ladder operators (degree ≤ 3) on the fitted Fock states."""

    def __init__(self, ops: list[np.ndarray], names: list[str]):
        from sde_com.physics.hamiltonian import normal_order

        numbers_ = [np.real(np.diag(a.conj().T @ a)) for a in ops]
        for name, a, occ in zip(names, ops, numbers_, strict=True):
            if not np.allclose(a.conj().T @ a, np.diag(occ), atol=1e-9):
                raise UserError(f"from_qutip: modes[{name!r}] is not an annihilator in a Fock basis (a†a not "
                                "diagonal)")
            if occ.max() < 3 + _GUARD:
                raise UserError(f"from_qutip: modes[{name!r}] keeps {int(round(occ.max())) + 1} Fock levels; the fit "
                                f"needs at least {4 + _GUARD}")
        keep = np.all([occ <= occ.max() - _GUARD + 1e-9 for occ in numbers_], axis=0)
        self.keep = np.flatnonzero(keep)
        self.monomials, columns = [], []
        singles = [(k, d) for k in range(len(ops)) for d in (1, 0)]
        mats = {(k, 0): ops[k] for k in range(len(ops))} | {(k, 1): ops[k].conj().T for k in range(len(ops))}
        seen = set()
        for degree in range(4):
            for combo in _combinations(singles, degree):
                mono = normal_order(combo)[0][0] if combo else ()
                if mono in seen:
                    continue
                seen.add(mono)
                m = np.eye(ops[0].shape[0], dtype=complex)
                for op in mono:  # creators then annihilators: exact on the kept states when truncated
                    m = m @ mats[op]
                self.monomials.append(mono)
                columns.append(m[np.ix_(self.keep, self.keep)].ravel())
        self.design = np.array(columns).T
        self.names = names

    def polynomial(self, operator: np.ndarray, where: str, max_degree: int) -> dict:
        from sde_com.physics.hamiltonian import show

        target = operator[np.ix_(self.keep, self.keep)].ravel()
        coef, *_ = np.linalg.lstsq(self.design, target, rcond=None)
        scale = max(float(np.abs(target).max()), 1e-300)
        if np.abs(self.design @ coef - target).max() > 1e-9 * scale:
            raise UserError(f"from_qutip: {where} has terms of degree four or more in the ladder operators of "
                            f"{self.names}, or acts on something else: a linear system's is quadratic in them")
        # below 1e-13 of the largest entry a coefficient (or its real or imaginary part) is the fit's rounding
        coef = np.where(np.abs(coef.real) > 1e-13 * scale, coef.real, 0) + 1j * np.where(
            np.abs(coef.imag) > 1e-13 * scale, coef.imag, 0)
        poly = {m: complex(c) for m, c in zip(self.monomials, coef, strict=True) if c != 0}
        for mono in poly:
            if len(mono) > max_degree:
                what = "a linear system's Hamiltonian is quadratic" if max_degree == 2 else "a jump operator is linear"
                raise UserError(f"from_qutip: {where} has the term {show(mono, self.names)} of degree {len(mono)}: "
                                f"{what} in the ladder operators")
        return poly


def _combinations(singles, degree):
    import itertools

    return itertools.combinations_with_replacement(singles, degree)


def _poly_text(poly: dict, names: list[str]) -> str:
    from sde_com.physics.hamiltonian import show

    return " + ".join(f"{expression_text(c)}*{show(m, names)}" if m else expression_text(c) for m, c in poly.items())


def _dissipators(jumps: list[dict], names: list[str]) -> list[dict]:
    """Collapse operators → dissipators: those ∝ a and ∝ a† of one mode → its thermal bath (where loss
    outweighs gain); every other, a lindblad one."""
    down, up, out = np.zeros(len(names)), np.zeros(len(names)), []
    for poly in jumps:
        if () in poly:
            raise UserError("from_qutip: a collapse operator has a constant part (the identity); a jump operator of "
                            "a linear system is linear in the ladder operators")
        if len(poly) == 1:
            (mono, c), = poly.items()
            (k, creator), = mono
            (up if creator else down)[k] += abs(c) ** 2
        elif poly:
            out.append(lindblad(_poly_text(poly, names), 1.0))
    baths = []
    for k, name in enumerate(names):
        if down[k] > up[k]:
            baths.append(thermal(name, float(down[k] - up[k]), float(up[k] / (down[k] - up[k]))))
        elif up[k] > 0:  # gain at least as fast as loss: no thermal state; kept as written
            baths += [lindblad(name, float(down[k]))] * (down[k] > 0) + [lindblad(f"dag({name})", float(up[k]))]
    return baths + out
