"""Systems as physicists write them: a quadratic Hamiltonian in ladder operators and dissipators → (A, D).

The map, in this project's convention (quadratures u = (x₁, p₁, x₂, p₂, ...), x = (a + a†)/√2,
p = (a − a†)/(i√2), [u_j, u_k] = iΩ_jk with Ω = ⊕ [[0, 1], [−1, 0]], covariance V = ⟨{u, uᵀ}⟩/2, vacuum ½ I,
ħ = 1, rates in rad/s):

- a Hamiltonian quadratic in the ladder operators is H = ½ uᵀ M u + const with M real symmetric (a mode
  operator is a = vᵀ u with v = (e_x + i e_p)/√2, a† = v*ᵀ u); it gives the drift Ω M;
- a dissipator γ D[L] (D[L]ρ = LρL† − ½{L†L, ρ}, γ the rate as written in the master equation: the energy decay
  rate, the linewidth) with a linear jump operator L = cᵀ u adds Γ = γ c* cᵀ; with Γ summed over the dissipators,
  the drift gains Ω Im Γ and the diffusion is Ω Re Γ Ωᵀ (E[dW dWᵀ] = D dt), so that dV/dt = AV + VAᵀ + D;
- ``thermal`` (γ, n): γ(n + 1) D[a] + γ n D[a†], the mode's amplitude decays at γ/2 and it relaxes to
  ⟨a†a⟩ = n; ``squeezed`` (γ, n, m, |m|² ≤ n(n + 1)): the same drift, with the diffusion γ V_target that makes a
  mode damped by it alone relax to ⟨a†a⟩ = n and ⟨aa⟩ = m; ``brownian`` (γ, n): drift −γ on p and diffusion
  γ(2n + 1) on p (the mechanical bath of this project and of Vitali et al. 2007; not of Lindblad form);
  ``lindblad`` (γ, a linear ``operator``).

A string is parsed with Python's ``ast`` against a whitelist (numbers, ``1j``, parameter names, mode names,
``dag(mode)``, ``+ − * /``, integer powers, parentheses, and ``sqrt``, ``exp``, ``cos``, ``sin``, ``conj``, ``pi``
of parameters), never evaluated by Python; its size, nesting and powers are bounded before anything is
expanded. Operator products are normal-ordered with [a, a†] = 1 as they are expanded, so terms that cancel do.
"""

from __future__ import annotations

import ast
import cmath
import functools
import keyword
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from sde_com.errors import UserError
from sde_com.physics.gaussian import symplectic_form
from sde_com.physics.system import Branch, LinearSystem
from sde_com.spec import Key, check_items, check_value, make_table

MAX_LENGTH = 10_000  # characters of one string
MAX_NODES = 2_000  # syntax nodes of one string
MAX_NESTING = 40  # parentheses and calls within one another
MATRICES_KEPT = 100_000  # grid points whose (A, D) a HamiltonianSystem keeps (≤ 2 × 8 (2N)² bytes each)
MODULATIONS_KEPT = 1024  # grid points whose periodic A(t) it keeps (up to 2 MAX_HARMONICS + 4 matrices each)
MAX_MODES = 100  # modes of one system (its A is 2N × 2N, its grid points each a dense 2N Lyapunov solve)
MAX_POWER = 16  # |exponent| of a power of numbers; of operators, what keeps the degree within MAX_DEGREE
MAX_DEGREE = 4  # operators in a product while it is expanded (a quadratic form needs 2; 3 and 4 are named)
MAX_WRITTEN_DEGREE = 16  # operators in a product as written, before normal ordering lowers it (a cheap first bound)
MAX_PRODUCTS = 100_000  # products of monomials one expansion may take (a quadratic form of 40 modes: ~6400)
FUNCTIONS = {"sqrt": cmath.sqrt, "exp": cmath.exp, "cos": cmath.cos, "sin": cmath.sin, "conj": complex.conjugate}
TIME = "t"  # the time (s): a Hamiltonian's coefficients may be periodic in it (cos(W*t), sin(W*t), exp(1j*W*t))
RESERVED = (*FUNCTIONS, "dag", "pi", TIME, "True", "False", "None")  # names that are not modes or parameters
MAX_HARMONICS = 32  # harmonics of the fundamental a periodic Hamiltonian may hold (sampled 2K + 1 times a period)
FREQUENCY_RTOL = 1e-9  # a frequency within this of a multiple of the fundamental is that multiple
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Call, ast.Load, ast.Add, ast.Sub,
          ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)

Op = tuple[int, int]  # (mode index, 1 for a creator a†, 0 for an annihilator a)
Mono = tuple[Op, ...]  # a normal-ordered product: creators (by mode), then annihilators (by mode)
Poly = dict  # Mono → (complex coefficient, magnitude: the sum of |contributions|, the scale of its rounding)
ROUNDING = 1e-12  # of a coefficient's magnitude: below it, terms that cancel have cancelled (rounding)


@functools.lru_cache(maxsize=4096)
def normal_order(ops: tuple[Op, ...]) -> tuple[tuple[Mono, int], ...]:
    """The normal-ordered form of a product of ladder operators, as (monomial, integer coefficient) pairs:
    a_k a_k† = a_k† a_k + 1, operators of different modes commute."""
    for i in range(len(ops) - 1):
        (k1, d1), (k2, d2) = ops[i], ops[i + 1]
        if d1 == 0 and d2 == 1:
            out: dict[Mono, int] = {}
            for mono, c in normal_order(ops[:i] + (ops[i + 1], ops[i]) + ops[i + 2:]):
                out[mono] = out.get(mono, 0) + c
            if k1 == k2:
                for mono, c in normal_order(ops[:i] + ops[i + 2:]):
                    out[mono] = out.get(mono, 0) + c
            return tuple((m, c) for m, c in out.items() if c)
    creators = sorted(o for o in ops if o[1] == 1)
    annihilators = sorted(o for o in ops if o[1] == 0)
    return ((tuple(creators + annihilators), 1),)


def _kept(mono: Mono, c: complex, magnitude: float) -> bool:
    """Whether a term stays: the constant always; another unless it cancelled to within ROUNDING of its
    magnitude (a non-finite one stays, to be refused by ``expand``)."""
    return not mono or not (math.isfinite(magnitude) and abs(c) <= ROUNDING * magnitude)


def _add(p: Poly, q: Poly, sign: float = 1.0) -> Poly:
    out = dict(p)
    for mono, (c, mag) in q.items():
        c0, m0 = out.get(mono, (0.0, 0.0))
        c0, m0 = c0 + sign * c, m0 + mag
        if _kept(mono, c0, m0):  # terms that cancelled are gone before any product
            out[mono] = (c0, m0)
        else:
            out.pop(mono, None)
    return out


def _mul(p: Poly, q: Poly, where: str) -> Poly:
    out: Poly = {}
    for m1, (c1, g1) in p.items():
        for m2, (c2, g2) in q.items():
            if len(m1) + len(m2) > MAX_DEGREE:
                raise UserError(f"{where}: a product of more than {MAX_DEGREE} ladder operators; the Hamiltonian of a "
                                "linear system is quadratic in them (linearise around the mean field first)")
            for mono, k in normal_order(m1 + m2):
                c0, g0 = out.get(mono, (0.0, 0.0))
                out[mono] = (c0 + c1 * c2 * k, g0 + g1 * g2 * abs(k))
    return {m: (c, g) for m, (c, g) in out.items() if _kept(m, c, g)}  # cancelled: gone


def _number(z: complex) -> complex:
    """z with a zero imaginary part made +0: −x from a unary minus is −x − 0j, which cmath.sqrt puts on the
    other side of its branch cut (sqrt(−x) must be +i√x)."""
    z = complex(z)
    return complex(z.real, 0.0) if z.imag == 0 else z


def _scalar(p: Poly, where: str, what: str) -> complex:
    if any(p):  # a non-empty monomial: an operator
        raise UserError(f"{where}: {what} takes numbers and parameters, not ladder operators")
    return _number(p.get((), (0.0, 0.0))[0])


def check_syntax(text: str, where: str, modes: Sequence[str], names: Sequence[str]) -> ast.Expression:
    """The syntax tree of ``text``, refused (UserError naming ``where`` and the offending piece) unless it is
    within the grammar and the bounds of the module docstring, before anything is evaluated or expanded."""
    try:
        return _check_syntax(text, where, modes, names)
    except (RecursionError, MemoryError):  # a chain of thousands of operators: no term of a Hamiltonian
        raise UserError(f"{where} is nested too deeply to read") from None


def _check_syntax(text: str, where: str, modes: Sequence[str], names: Sequence[str]) -> ast.Expression:
    if not isinstance(text, str):
        raise UserError(f"{where} must be a string, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise UserError(f"{where} is {len(text)} characters long; at most {MAX_LENGTH}")
    depth = deepest = 0
    for ch in text:  # before ast.parse, whose recursion a deep nesting would exhaust
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise UserError(f"{where} nests parentheses {deepest} deep; at most {MAX_NESTING}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise UserError(f"{where}: not an expression ({exc.msg}): {text!r}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise UserError(f"{where} has {len(nodes)} terms and operations; at most {MAX_NODES}")
    known = set(modes) | set(names) | set(FUNCTIONS) | {"dag", "pi"}
    for node in nodes:
        _check_node(node, where, modes, names, known)
    _degree(tree.body, where, set(modes))  # bounded before anything is expanded
    return tree


def _degree(node, where: str, modes: set[str]) -> int:
    """The most ladder operators any product of ``node`` holds as written (normal ordering can only lower it);
    UserError naming the piece beyond MAX_WRITTEN_DEGREE, or an operator inside a function or a divisor. Long
    sums and products are walked along their left spine, without recursion."""
    while isinstance(node, ast.UnaryOp):
        node = node.operand
    if isinstance(node, ast.Name):
        return int(node.id in modes)
    if isinstance(node, ast.Constant):
        return 0
    if isinstance(node, ast.Call):
        if node.func.id == "dag":
            return 1
        if _degree(node.args[0], where, modes):
            raise UserError(f"{where}: {ast.unparse(node)!r}: {node.func.id} takes numbers and parameters, not "
                            "ladder operators")
        return 0
    if isinstance(node.op, ast.Pow):
        degree = _degree(node.left, where, modes) * abs(ast.literal_eval(node.right))
    else:
        group = (ast.Add, ast.Sub) if isinstance(node.op, (ast.Add, ast.Sub)) else (ast.Mult, ast.Div)
        chain = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, group):
            chain.append(node)
            node = node.left
        degree = _degree(node, where, modes)
        for link in reversed(chain):
            right = _degree(link.right, where, modes)
            if isinstance(link.op, ast.Div) and right:
                raise UserError(f"{where}: {ast.unparse(link)[:80]!r} divides by ladder operators")
            degree = max(degree, right) if group[0] is ast.Add else degree + right
        node = chain[0] if chain else node
    if degree > MAX_WRITTEN_DEGREE:
        raise UserError(f"{where}: {ast.unparse(node)[:80]!r} is a product of {degree} ladder operators; a linear "
                        "system's Hamiltonian is quadratic in them (linearise it around the mean field first)")
    return degree


def _check_node(node, where: str, modes, names, known) -> None:
    if not isinstance(node, _NODES):
        raise UserError(f"{where}: {type(node).__name__} ({ast.unparse(node)!r}) is not allowed; allowed: numbers, "
                        "mode and parameter names, dag(mode), + - * /, integer powers, sqrt, exp, cos, sin, conj, pi")
    if isinstance(node, ast.Constant) and (isinstance(node.value, bool)
                                           or not isinstance(node.value, (int, float, complex))):
        raise UserError(f"{where}: {node.value!r} is not a number")
    if isinstance(node, ast.Name) and node.id == TIME and TIME not in known:
        raise UserError(f"{where}: the time t may appear only in system.hamiltonian (its coefficients may be "
                        "periodic; the baths, rates and scales are fixed)")
    if isinstance(node, ast.Name) and node.id not in known:
        raise UserError(f"{where}: unknown name {node.id!r}{_closest(node.id, known)}: neither a mode "
                        f"{list(modes)} nor a parameter with a default {list(names)} (give every parameter its "
                        "default in system.parameters)")
    if isinstance(node, ast.Call):
        _check_call(node, where, modes)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exponent = node.right
        if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, ast.USub):
            exponent = exponent.operand
        if not (isinstance(exponent, ast.Constant) and isinstance(exponent.value, int)
                and not isinstance(exponent.value, bool) and abs(exponent.value) <= MAX_POWER):
            raise UserError(f"{where}: {ast.unparse(node)!r}: powers are integers of at most {MAX_POWER}")


def _check_call(node: ast.Call, where: str, modes) -> None:
    if not isinstance(node.func, ast.Name) or node.func.id not in (*FUNCTIONS, "dag") or node.keywords \
            or len(node.args) != 1:
        raise UserError(f"{where}: {ast.unparse(node)!r}: calls are dag(mode) or one of {sorted(FUNCTIONS)} of one "
                        "argument")
    if node.func.id == "dag" and not (isinstance(node.args[0], ast.Name) and node.args[0].id in modes):
        raise UserError(f"{where}: {ast.unparse(node)!r}: dag takes a mode name, one of {list(modes)}")


def _closest(name: str, known) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def expand(tree: ast.Expression, where: str, modes: Sequence[str], values: Mapping[str, complex]) -> Poly:
    """The normal-ordered polynomial of a checked expression (``check_syntax``) at parameter ``values``, each
    coefficient with its magnitude; terms that cancel to within ROUNDING of their magnitude are dropped, and a
    coefficient that is not finite (an overflow) is refused."""
    try:
        poly = _Evaluator(where, {m: k for k, m in enumerate(modes)}, values).visit(tree)
    except (OverflowError, ZeroDivisionError, ValueError) as exc:  # a number beyond floats, ...
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{where} cannot be evaluated at {dict(values)}: {exc}") from None
    except RecursionError:
        raise UserError(f"{where} is nested too deeply to evaluate") from None
    for mono, (c, mag) in poly.items():
        if not (cmath.isfinite(c) and math.isfinite(mag)):
            raise UserError(f"{where} is not finite at {dict(values)} (its term {show(mono, modes)} overflows or is "
                            "nan)")
    return {m: (_number(c), mag) for m, (c, mag) in poly.items() if _kept(m, c, mag) and (m or c != 0)}


def evaluate(tree: ast.Expression, where: str, modes: Sequence[str], values: Mapping[str, complex]) -> dict:
    """Monomial → complex coefficient of ``expand`` (without the magnitudes)."""
    return {m: c for m, (c, _) in expand(tree, where, modes, values).items()}


class _Evaluator(ast.NodeVisitor):
    """Each node of a checked expression → its normal-ordered polynomial (``evaluate``)."""

    def __init__(self, where: str, index: Mapping[str, int], values: Mapping[str, complex]):
        self.where, self.index, self.values = where, index, values
        self.products = 0

    def _mul(self, p: Poly, q: Poly) -> Poly:
        self.products += len(p) * len(q)
        if self.products > MAX_PRODUCTS:  # before the work, not after: a hostile string stops here at once
            raise UserError(f"{self.where}: expanding it takes more than {MAX_PRODUCTS} products of terms; a linear "
                            "system's Hamiltonian is quadratic: multiply out what is of higher degree, or linearise")
        return _mul(p, q, self.where)

    def visit_Expression(self, node) -> Poly:
        return self.visit(node.body)

    def visit_Constant(self, node) -> Poly:
        return {(): (complex(node.value), abs(node.value))}

    def visit_Name(self, node) -> Poly:
        if node.id in self.index:
            return {((self.index[node.id], 0),): (1.0, 1.0)}
        value = complex(math.pi if node.id == "pi" else self.values[node.id])
        return {(): (value, abs(value))}

    def visit_UnaryOp(self, node) -> Poly:
        sign = 1.0
        while isinstance(node, ast.UnaryOp):  # a chain of signs, without recursion
            sign = -sign if isinstance(node.op, ast.USub) else sign
            node = node.operand
        p = self.visit(node)
        return p if sign > 0 else {m: (-c, g) for m, (c, g) in p.items()}

    def visit_Call(self, node) -> Poly:
        if node.func.id == "dag":
            return {((self.index[node.args[0].id], 1),): (1.0, 1.0)}
        value = FUNCTIONS[node.func.id](_scalar(self.visit(node.args[0]), self.where, node.func.id))
        return {(): (value, abs(value))}

    def visit_BinOp(self, node) -> Poly:
        group = (ast.Add, ast.Sub) if isinstance(node.op, (ast.Add, ast.Sub)) else (ast.Mult, ast.Div) \
            if isinstance(node.op, (ast.Mult, ast.Div)) else None
        if group is None:
            return self._power(node, self.visit(node.left))
        chain = []  # the left spine of a long sum or product, walked without recursion
        while isinstance(node, ast.BinOp) and isinstance(node.op, group):
            chain.append(node)
            node = node.left
        acc = self.visit(node)
        for link in reversed(chain):
            right = self.visit(link.right)
            if isinstance(link.op, (ast.Add, ast.Sub)):
                acc = _add(acc, right, 1.0 if isinstance(link.op, ast.Add) else -1.0)
            elif isinstance(link.op, ast.Mult):
                acc = self._mul(acc, right)
            else:
                d = _scalar(right, self.where, "a divisor")
                if d == 0:
                    raise UserError(f"{self.where}: {ast.unparse(link)!r} divides by zero at {dict(self.values)}")
                acc = {m: (c / d, g / abs(d)) for m, (c, g) in acc.items()}
        return acc

    def _power(self, node, base: Poly) -> Poly:
        n = int(ast.literal_eval(node.right))  # an integer power (check_syntax)
        if not any(base):  # a number
            value = _scalar(base, self.where, "a power") ** n
            return {(): (value, abs(value))}
        if n < 0:
            raise UserError(f"{self.where}: {ast.unparse(node)!r}: a negative power of ladder operators")
        out: Poly = {(): (1.0, 1.0)}
        for _ in range(n):
            out = self._mul(out, base)
        return out


def show(mono: Mono, modes: Sequence[str]) -> str:
    """A monomial as written: 'dag(a)*b', '1' for the constant."""
    return "*".join(f"dag({modes[k]})" if d else modes[k] for k, d in mono) or "1"


def _vectors(n_modes: int) -> np.ndarray:
    """v_k (N, 2N): a_k = v_kᵀ u with v_k = (e_x + i e_p)/√2 of mode k."""
    v = np.zeros((n_modes, 2 * n_modes), dtype=complex)
    for k in range(n_modes):
        v[k, 2 * k], v[k, 2 * k + 1] = 1 / math.sqrt(2), 1j / math.sqrt(2)
    return v


def _vector(op: Op, v: np.ndarray) -> np.ndarray:
    k, dag = op
    return np.conj(v[k]) if dag else v[k]


_PAIR = {0: np.array([1.0, 1j]) / math.sqrt(2), 1: np.array([1.0, -1j]) / math.sqrt(2)}  # a, a† on (x, p)


def _conjugate(mono: Mono) -> Mono:
    """The normal-ordered monomial of the adjoint of a normal-ordered monomial of degree ≤ 2 (no constant)."""
    return normal_order(tuple((k, 1 - d) for k, d in reversed(mono)))[0][0]


def quadratic_form(h: Poly, modes: Sequence[str], where: str = "hamiltonian") -> np.ndarray:
    """M (2N × 2N, real symmetric) with H = ½ uᵀ M u + const, from a normal-ordered Hamiltonian (``expand``:
    coefficients with their magnitudes); UserError naming the term for a linear term, a term of degree three or
    more, or a non-Hermitian H (a coefficient and its conjugate's differing beyond ROUNDING of their
    magnitudes)."""
    for mono, (c, mag) in h.items():
        if len(mono) > 2:
            raise UserError(f"{where}: the term {show(mono, modes)} is of degree {len(mono)}: a linear system's "
                            "Hamiltonian is quadratic in the ladder operators (linearise it around the mean field "
                            "first)")
        if len(mono) == 1:
            raise UserError(f"{where}: the linear term {show(mono, modes)} moves the mean field, not the "
                            "fluctuations: leave it out (the mean field is solved apart)")
        if not mono:
            continue
        partner = _conjugate(mono)
        c2, mag2 = h.get(partner, (0.0, 0.0))
        if abs(c2 - np.conj(c)) > ROUNDING * (mag + mag2):
            if partner == mono:
                raise UserError(f"{where} is not Hermitian: the term {show(mono, modes)} is its own conjugate, so its "
                                f"coefficient must be real, got {c:.6g}")
            raise UserError(f"{where} is not Hermitian: the term {show(mono, modes)} has the coefficient {c:.6g}, "
                            f"but its conjugate {show(partner, modes)} has {c2:.6g} (it must be {np.conj(c):.6g})")
    M = np.zeros((2 * len(modes), 2 * len(modes)), dtype=complex)
    for mono, (c, _) in h.items():
        if len(mono) == 2:
            (k1, d1), (k2, d2) = mono
            w1, w2 = _PAIR[d1], _PAIR[d2]
            M[2 * k1:2 * k1 + 2, 2 * k2:2 * k2 + 2] += c * np.outer(w1, w2)
            M[2 * k2:2 * k2 + 2, 2 * k1:2 * k1 + 2] += c * np.outer(w2, w1)
    return M.real  # Hermitian H: real up to rounding


def jump_vector(p: Poly, modes: Sequence[str], where: str) -> np.ndarray:
    """c with L = cᵀ u of a linear jump operator; UserError for a constant or a nonlinear term."""
    v = _vectors(len(modes))
    c = np.zeros(2 * len(modes), dtype=complex)
    for mono, z in p.items():
        if len(mono) != 1:
            raise UserError(f"{where}: the term {show(mono, modes)} makes the jump operator "
                            f"{'constant' if not mono else 'nonlinear'}; it must be linear in the ladder operators")
        c += z * _vector(mono[0], v)
    return c


def bath_matrices(kind: str, mode: int, rate: float, n: float, m: complex, n_modes: int):
    """(A, D) of a thermal, squeezed or Brownian bath on one mode (module docstring)."""
    A, D = np.zeros((2 * n_modes,) * 2), np.zeros((2 * n_modes,) * 2)
    x, p = 2 * mode, 2 * mode + 1
    if kind == "brownian":
        A[p, p], D[p, p] = -rate, rate * (2 * n + 1)
        return A, D
    A[x, x] = A[p, p] = -rate / 2  # the amplitude decays at half the energy rate
    D[x, x], D[p, p] = rate * (n + 0.5 + m.real), rate * (n + 0.5 - m.real)
    D[x, p] = D[p, x] = rate * m.imag
    return A, D


def drift_diffusion(M: np.ndarray, gamma: np.ndarray, A_baths: np.ndarray, D_baths: np.ndarray):
    """A = Ω (M + Im Γ) + A_baths, D = Ω Re Γ Ωᵀ + D_baths (module docstring)."""
    omega = symplectic_form(M.shape[0] // 2)  # [u_j, u_k] = iΩ_jk
    A = omega @ (M + gamma.imag) + A_baths
    D = omega @ gamma.real @ omega.T + D_baths
    return A, 0.5 * (D + D.T)


# Python builders: an Expression writes the grammar's string as it is built ----------------------------------

# Operands written without parentheses (Python's precedence reads them back as built): by the operator built
# and the operand's side. An atom (a name, a number, a call: op None, "mode", "call") never needs them.
_BARE = {("+", "left"): {"+", "-", "*", "/", "**", "neg"}, ("+", "right"): {"*", "/", "**"},
         ("*", "left"): {"*", "/", "**", "neg"}, ("*", "right"): {"**"}, ("**", "left"): set(), ("neg", "left"): {"**"}}
_GROUP = {"+": "+", "-": "+", "*": "*", "/": "*", "**": "**", "neg": "neg"}
_ATOMS = (None, "mode", "call")


class Expression:
    """A piece of a Hamiltonian string built in Python (``sde_com.hamiltonian``) with + - * / and integer
    powers from modes, parameters and numbers; ``str()`` gives the string ``HamiltonianSystem`` reads."""

    __slots__ = ("text", "op")

    def __init__(self, text: str, op: str | None = None):
        self.text, self.op = text, op  # op: the outermost operation (None, "mode", "call": an atom)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def _operand(self, other, op: str, side: str) -> str:
        if not isinstance(other, Expression):
            return expression_text(other)
        bare = other.op in _ATOMS or other.op in _BARE[(_GROUP[op], side)]
        return other.text if bare else f"({other.text})"

    def _binary(self, other, op: str, reflected: bool = False) -> Expression:
        left, right = (other, self) if reflected else (self, other)
        return Expression(f"{self._operand(left, op, 'left')} {op} {self._operand(right, op, 'right')}", op)

    __add__ = lambda self, o: self._binary(o, "+")  # noqa: E731
    __radd__ = lambda self, o: self._binary(o, "+", True)  # noqa: E731
    __sub__ = lambda self, o: self._binary(o, "-")  # noqa: E731
    __rsub__ = lambda self, o: self._binary(o, "-", True)  # noqa: E731
    __mul__ = lambda self, o: self._binary(o, "*")  # noqa: E731
    __rmul__ = lambda self, o: self._binary(o, "*", True)  # noqa: E731
    __truediv__ = lambda self, o: self._binary(o, "/")  # noqa: E731
    __rtruediv__ = lambda self, o: self._binary(o, "/", True)  # noqa: E731

    def __pow__(self, n: int) -> Expression:
        if isinstance(n, bool) or not isinstance(n, int):
            raise UserError(f"a power of {self.text!r} must be an integer, got {n!r}")
        return Expression(f"{self._operand(self, '**', 'left')}**{n}" if n >= 0 else
                          f"{self._operand(self, '**', 'left')}**({n})", "**")

    def __neg__(self) -> Expression:
        return Expression(f"-{self._operand(self, 'neg', 'left')}", "neg")

    def __pos__(self) -> Expression:
        return self


def expression_text(value) -> str:
    """An Expression's string, or a number written exactly (``repr`` reads back to the same float)."""
    if isinstance(value, Expression):
        return value.text
    if isinstance(value, (int, float, complex, np.number)) and not isinstance(value, (bool, np.bool_)):
        z = complex(value)
        if z.imag == 0:
            return repr(float(z.real)) if z.real >= 0 else f"({float(z.real)!r})"
        sign = "+" if z.imag > 0 else "-"
        return f"({float(z.real)!r} {sign} {abs(float(z.imag))!r}j)"
    raise UserError(f"a Hamiltonian is built from modes, parameters and numbers, got {value!r}")


def _string(value):
    """A string of the grammar: an ``Expression``'s text, anything else as it is (checked where read)."""
    return value.text if isinstance(value, Expression) else value


# The system -----------------------------------------------------------------------------------------------

_PERIODIC_CALLS = ("cos", "sin", "exp")  # the functions of the time t a periodic coefficient is made of


def _holds_time(node) -> bool:
    return any(isinstance(n, ast.Name) and n.id == TIME for n in ast.walk(node))


def time_calls(tree: ast.Expression) -> list[ast.Call]:
    """The calls cos(…), sin(…), exp(…) of the Hamiltonian whose argument holds the time t."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func.id in _PERIODIC_CALLS
            and _holds_time(n.args[0])]


def call_frequency(call: ast.Call, where: str, values: Mapping[str, complex]) -> float:
    """The angular frequency w ≥ 0 (rad/s) of a call of t: its argument must be α + βt (checked at t = 0 … 3 s:
    the second differences within 1e-9 of the slope, above the rounding of α), β real for cos and sin, imaginary
    for exp (a periodic factor, not a growing one)."""
    body = ast.Expression(body=call.args[0])
    arg = [_scalar(expand(body, where, (), {**values, TIME: float(t)}), where, call.func.id) for t in range(4)]
    slope = arg[1] - arg[0]
    rounding = 8 * 2.0 ** -52 * abs(arg[0])  # of α, which every difference carries
    if slope == 0:  # no frequency, or one lost in a large phase's rounding: it shows at an enormous t
        far = _scalar(expand(body, where, (), {**values, TIME: 2.0 ** 80}), where, call.func.id)
        slope = 0.0 if far == arg[0] else (far - arg[0]) / 2.0 ** 80
    if slope != 0 and rounding > 0.1 * FREQUENCY_RTOL * abs(slope):  # a frequency read to better than matched
        raise UserError(f"{where}: {ast.unparse(call)!r}: its phase {abs(arg[0]):.3g} is too large for its frequency "
                        f"{abs(slope):.3g} rad/s to be read at {dict(values)}: give the phase modulo 2π")
    if any(abs(arg[k] - arg[0] - k * slope) > 1e-9 * k * abs(slope) + rounding for k in (2, 3)):
        raise UserError(f"{where}: {ast.unparse(call)!r}: its argument is not linear in t at {dict(values)}: a "
                        "periodic coefficient is cos(W*t + φ), sin(W*t + φ) or exp(1j*(W*t + φ))")
    grows = slope.imag if call.func.id != "exp" else slope.real
    if abs(grows) > 1e-12 * abs(slope):
        raise UserError(f"{where}: {ast.unparse(call)!r} grows or decays in t at {dict(values)} (not periodic): "
                        f"{'cos and sin take a real' if call.func.id != 'exp' else 'exp takes an imaginary'} "
                        "multiple of t")
    return abs(slope.real if call.func.id != "exp" else slope.imag)


def fundamental(frequencies: Sequence[float], where: str, stated: float | None) -> tuple[float, list[int]]:
    """(Ω, n_i): the fundamental angular frequency and each frequency's multiple of it, w_i = n_i Ω. Ω from the
    stated period (2π/T: every cos, sin and exp of t must repeat with it, its frequency a whole multiple of Ω), or
    found: the largest Ω of which every w_i is a whole multiple (their ratios as fractions of denominator ≤
    MAX_HARMONICS, to FREQUENCY_RTOL). With every w_i = 0 (a parameter that stops the modulation at this point)
    a stated period still holds (nothing changes: K = 0); none can be found."""
    from fractions import Fraction

    nonzero = [w for w in frequencies if w > 0]
    if not nonzero and stated is None:
        raise UserError(f"{where}: the time t appears, but no coefficient changes with it (every frequency is 0); "
                        "state system.period to run a point where the modulation stops")
    if stated is not None:
        omega = 2 * math.pi / stated
    else:
        low = min(nonzero)
        if not all(math.isfinite(w / low) and w / low < 2.0 ** 52 for w in nonzero):
            raise UserError(f"{where}: the frequencies {low:.3g} to {max(nonzero):.3g} rad/s are not commensurate "
                            "(their ratio is beyond floats): the Hamiltonian is not periodic")
        ratios = [Fraction(w / low).limit_denominator(MAX_HARMONICS) for w in nonzero]
        for w, r in zip(nonzero, ratios, strict=True):
            if abs(w / low - r) > FREQUENCY_RTOL * w / low:
                raise UserError(f"{where}: the frequencies {low:.10g} and {w:.10g} rad/s are not commensurate (no "
                                f"ratio of integers up to {MAX_HARMONICS}; the coefficients may hold up to "
                                f"{MAX_HARMONICS} harmonics of the fundamental): the Hamiltonian is not periodic "
                                "with a period the run can sample")
        omega = low / math.lcm(*(r.denominator for r in ratios))
    if not (math.isfinite(omega) and omega > 0 and math.isfinite(2 * math.pi / omega)
            and all(math.isfinite(w / omega) for w in frequencies)):
        raise UserError(f"{where}: the modulation's angular frequency {omega:.3g} rad/s gives no finite period, or "
                        "its frequencies are beyond floats in units of it")
    multiples = [round(w / omega) for w in frequencies]
    for w, n in zip(frequencies, multiples, strict=True):
        if abs(w - n * omega) > FREQUENCY_RTOL * max(w, omega):
            raise UserError(f"{where}: the frequency {w:.10g} rad/s is not a whole multiple of 2π/period = "
                            f"{omega:.10g} rad/s: every cos, sin and exp of t must repeat with the stated "
                            "system.period")
    return omega, multiples


def harmonic_order(tree: ast.Expression, where: str, orders: Mapping[int, int]) -> int:
    """The highest harmonic of Ω the expression can hold, from the multiples ``orders`` of its calls of t (by
    id): sums take the larger, products add, an integer power multiplies. UserError where t appears otherwise
    (outside cos, sin, exp; in a divisor, a negative power, or a function of a periodic coefficient): the
    coefficients would not be a finite Fourier series."""
    result: dict[int, int] = {}
    stack = [(tree.body, False)]
    while stack:  # post-order without recursion (a long sum's spine)
        node, done = stack.pop()
        if id(node) in orders:
            result[id(node)] = orders[id(node)]
        elif not done:
            stack.append((node, True))
            stack.extend((c, False) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))
        else:
            result[id(node)] = _order_of(node, where, result)
    return result[id(tree.body)]


def _order_of(node, where: str, result: Mapping[int, int]) -> int:
    """``harmonic_order`` of one node from its children's."""
    if isinstance(node, ast.Name) and node.id == TIME:
        raise UserError(f"{where}: the time t appears outside cos, sin or exp: the coefficients must be periodic in "
                        "t (cos(W*t), sin(W*t), exp(1j*W*t))")
    if isinstance(node, ast.UnaryOp):
        return result[id(node.operand)]
    if isinstance(node, ast.Call):
        inner = result[id(node.args[0])] if node.func.id != "dag" else 0
        if inner and node.func.id != "conj":
            raise UserError(f"{where}: {ast.unparse(node)[:80]!r}: a function of a periodic coefficient; write the "
                            "coefficients as sums and products of cos, sin and exp of t")
        return inner
    if not isinstance(node, ast.BinOp):
        return 0
    left, right = result[id(node.left)], result[id(node.right)]
    if isinstance(node.op, (ast.Add, ast.Sub)):
        return max(left, right)
    if isinstance(node.op, ast.Mult):
        return left + right
    if isinstance(node.op, ast.Div) or ast.literal_eval(node.right) < 0:
        if right or (left and not isinstance(node.op, ast.Div)):
            raise UserError(f"{where}: {ast.unparse(node)[:80]!r} divides by a periodic coefficient: the "
                            "coefficients must be sums and products of cos, sin and exp of t")
        return left
    return left * int(ast.literal_eval(node.right))


DISSIPATOR_KINDS = ("thermal", "squeezed", "brownian", "lindblad")
_BATHS = DISSIPATOR_KINDS[:3]  # the kinds that act on one mode with an occupation n
DISSIPATOR = make_table(
    "dissipators", "One bath of a system given by its Hamiltonian: a table of the list [system] `dissipators` "
                   "(`[[system.dissipators]]`). A rate, n or m is a number or an expression of the parameters "
                   "(the Hamiltonian's grammar, without operators).",
    Key("kind", "string", "'thermal': γ(n + 1) D[a] + γ n D[a†]; 'squeezed': a squeezed bath (n, m); 'brownian': "
                          "the quantum Brownian bath of a mechanical mode (drift −γ on p, diffusion γ(2n + 1) on "
                          "p; not of Lindblad form); 'lindblad': γ D[L] of any linear jump operator L",
        choices=DISSIPATOR_KINDS),
    Key("mode", "string", "the mode it acts on (one of `modes`)", only_with=_BATHS),
    Key("operator", "string", "the jump operator L, linear in the ladder operators, e.g. 'a + 0.5*dag(b)'",
        only_with=("lindblad",)),
    Key("rate", "number | string", "γ, the rate as written in the master equation: the energy decay rate (the "
                                   "linewidth; the amplitude decays at γ/2), rad s-1", "s-1", minimum=0.0),
    Key("n", "number | string", "the bath's occupation ⟨b†b⟩: a mode damped by it alone relaxes to ⟨a†a⟩ = n", "1",
        default=0.0, minimum=0.0, only_with=_BATHS),
    Key("m", "number | string", "the squeezed bath's ⟨bb⟩, |m|² ≤ n(n + 1): a mode damped by it alone relaxes to "
                                "⟨aa⟩ = m (a complex m as an expression, e.g. '0.4*exp(1j*theta)')", "1",
        default=0.0, only_with=("squeezed",)),
    Key("port", "boolean", "this vacuum bath (thermal, n = 0) is its mode's detected output port (amplitude rate "
                           "γ/2, the `outputs` convention): enables [detect]", default=False,
        only_with=("thermal",)),
)

# The keys a [system] table gives a Hamiltonian by (beside ``modes`` and ``time_scale``, which it shares with a
# system given by its matrices): read by HamiltonianSystem and by the scenario schema.
HAMILTONIAN_KEYS = (
    Key("hamiltonian", "string", "H/ħ in rad s-1, quadratic in the ladder operators: mode names (a), dag(a) (a†), "
                                 "numbers (1j for i), parameter names, + - * / ** (integer powers), parentheses, "
                                 "sqrt, exp, cos, sin, conj, pi; normal-ordered with [a, a†] = 1 (see Physics: "
                                 "from a Hamiltonian); instead of the matrices"),
    Key("dissipators", "list[table]", "the baths: `[[system.dissipators]]` tables (their keys below)",
        items=DISSIPATOR),
    Key("parameters", "table[number]", "the default value of every parameter name the strings use; [model] sets "
                                       "or sweeps any of them"),
    Key("units", "table[string]", "the unit of a parameter as a UDUNITS string ('s-1', 'rad/s', 'K'), written on "
                                  "its axis and in the file as given (not checked: a wrong one makes the file's "
                                  "CF units wrong); a parameter not listed is a pure number ('1')"),
    Key("period", "number | string", "the period T of a Hamiltonian whose coefficients are periodic in the time t "
                                     "(a number or an expression of the parameters, e.g. '2*pi/W'; every cos, sin "
                                     "and exp of t must repeat with it); absent: found from their frequencies (ratios "
                                     f"of integers up to {MAX_HARMONICS}). The coefficients may hold up to "
                                     f"{MAX_HARMONICS} harmonics of 2π/T", "s"),
)
_DISSIPATORS_KEY = HAMILTONIAN_KEYS[1]


class HamiltonianSystem(LinearSystem):
    """A linear system written as physicists write it (module docstring): its ``modes``, a quadratic
    ``hamiltonian`` string, ``dissipators`` (tables: ``kind``, ``mode`` or a linear ``operator``, ``rate``, ``n``,
    ``m``, ``port``; a rate, n or m may be a number or an expression of the parameters), the default value of
    every parameter the strings use (``parameters``: the [model] keys, swept as any system's), and
    ``time_scale`` ω_ref (a number, a parameter expression, or absent: the spectral radius of A at the point,
    rounded to 12 digits). ``matrices(**params)`` gives (A, D) in rad/s. A Hamiltonian whose coefficients are
    periodic in the time ``t`` (cos, sin, exp of W*t; ``period`` stated, or found) is a modulated system
    (capability 'periodic'): ``periodic_modulation(params)`` gives its A(t), and ``matrices`` the period's
    average."""

    name = "hamiltonian"
    capability_hints = MappingProxyType({
        "output_ports": "mark its mode's vacuum bath as the port (a thermal dissipator with n = 0 and port = true)",
        "periodic": "write coefficients of its Hamiltonian periodic in the time t (cos(W*t), sin(W*t))",
        "mean_field_dynamics": "a Hamiltonian system is linear, of the fluctuations only: it has no nonlinear "
                               "mean-field dynamics to drive",
        "truncated_wigner": "a Hamiltonian system is linear: there is no nonlinearity for the truncated-Wigner check "
                            "to test"})

    def __init__(self, modes: Sequence[str], hamiltonian: str, dissipators: Sequence[Mapping] = (),
                 parameters: Mapping[str, float] | None = None, time_scale: float | str | None = None,
                 units: Mapping[str, str] | None = None, period: float | str | None = None):
        from sde_com.physics.matrix import MODE_NAME

        modes = [_string(m) for m in modes] if isinstance(modes, (list, tuple)) else modes
        hamiltonian, time_scale = _string(hamiltonian), _string(time_scale)
        if not isinstance(modes, list) or not modes or not all(isinstance(m, str) and MODE_NAME.fullmatch(m)
                                                              for m in modes) or len(set(modes)) < len(modes):
            raise UserError(f"system.modes must be a list of distinct names (letters, digits, _), got {modes!r}")
        if len(modes) > MAX_MODES:
            raise UserError(f"system.modes lists {len(modes)} modes; at most {MAX_MODES}")
        reserved = [m for m in modes if m in RESERVED or keyword.iskeyword(m)]
        if reserved:
            raise UserError(f"system.modes: {reserved} are names of the grammar (functions, dag, pi, the time t, "
                            "Python keywords); name the modes otherwise")
        self.modes = tuple(modes)
        self._made: dict = {}  # parameter values → (A, D): matrices()
        self._modulations: dict = {}  # parameter values → floquet.Modulation: periodic_modulation()
        self.quadratures = tuple(f"{q}_{m}" for m in self.modes for q in ("x", "p"))
        defaults = dict(parameters or {})
        check_value(HAMILTONIAN_KEYS[2], defaults, "system.parameters")
        for k in defaults:
            if k == TIME:
                raise UserError("system.parameters.t: t is the time (s), reserved for coefficients periodic in it "
                                "(cos(W*t)); name the parameter otherwise")
            if k in self.modes or k in RESERVED or keyword.iskeyword(k) or not MODE_NAME.fullmatch(k):
                raise UserError(f"system.parameters.{k}: a parameter is named by letters, digits and _, not as a "
                                f"mode ({list(self.modes)}) or a function")
        units = dict(units or {})
        check_value(HAMILTONIAN_KEYS[3], units, "system.units")
        for k in units:
            if k not in defaults:
                raise UserError(f"system.units.{k}: not a parameter (parameters: {list(defaults)})")
        self.units = units
        self.parameters = MappingProxyType({k: Key(k, "number", f"parameter {k} of the Hamiltonian system",
                                                   units.get(k, "1"), float(v), forms=("list", "range"))
                                            for k, v in defaults.items()})
        names = list(defaults)
        self.hamiltonian = hamiltonian
        self._h = check_syntax(hamiltonian, "system.hamiltonian", self.modes, [*names, TIME])
        self._calls = time_calls(self._h)  # coefficients periodic in t: a modulated system
        if not self._calls and _holds_time(self._h):
            _order_of(ast.Name(id=TIME), "system.hamiltonian", {})  # refused: t outside cos, sin, exp
        self.period = self._checked_period(_string(period), names)
        dissipators = [{k: _string(v) for k, v in d.items()} if isinstance(d, Mapping) else d for d in dissipators]
        check_items(_DISSIPATORS_KEY, dissipators, "system.dissipators")  # a builder's Expressions: strings
        self.dissipators = [self._dissipator(i, d, names) for i, d in enumerate(dissipators)]
        if _is_number(time_scale) and not (math.isfinite(time_scale) and time_scale > 0) or not (
                time_scale is None or _is_number(time_scale) or isinstance(time_scale, str)):
            raise UserError(f"system.time_scale must be a finite rate > 0 (s-1) or an expression of the parameters, "
                            f"got {time_scale!r}")
        self.time_scale = time_scale
        self._time = None if time_scale is None or _is_number(time_scale) else check_syntax(
            time_scale, "system.time_scale", (), names)
        ports = [d["mode"] for d in self.dissipators if d["port"]]
        if len(set(ports)) < len(ports):
            raise UserError(f"system.dissipators: two ports on one mode ({ports}); a mode has one detected port")
        self.capabilities = frozenset({*(("output_ports",) if ports else ()), *(("periodic",) if self._calls else ())})
        self._rate(self.resolve({}), self.matrices()[0])  # every string and value checked at the defaults now

    def _checked_period(self, period, names: list[str]):
        """``period``: None, a number > 0 or an expression of the parameters; only with a Hamiltonian of t."""
        if period is None:
            return None
        if not self._calls:
            raise UserError("system.period: the Hamiltonian does not depend on the time t (nothing is periodic)")
        if _is_number(period):
            if not (math.isfinite(period) and period > 0):
                raise UserError(f"system.period must be a finite time > 0 (s), got {period!r}")
            return float(period)
        if not isinstance(period, str):
            raise UserError(f"system.period must be a time > 0 (s) or an expression of the parameters, got "
                            f"{period!r}")
        self._period_tree = check_syntax(period, "system.period", (), names)
        return period

    def periodic_modulation(self, params: Mapping[str, object]):
        """The Hamiltonian's periodic A(t) (D fixed: the baths are) as a ``floquet.Modulation`` (rad/s), from its
        samples at 2K + 1 times of the period (K: the highest harmonic it can hold, ``harmonic_order``), the
        discrete Fourier series exact for such a trigonometric polynomial; checked against the Hamiltonian itself
        at two more times (to 1e-10 of A)."""
        values = self.resolve(params)
        key = tuple(values.items())
        mod = self._modulations.get(key)
        if mod is None:  # a local first: another thread may clear the cache between the store and the return
            mod = self._modulation(values)
            if len(self._modulations) >= MODULATIONS_KEPT:
                self._modulations.clear()
            self._modulations[key] = mod
        return mod

    def _modulation(self, values: Mapping[str, object]):
        from sde_com.physics.floquet import Modulation

        where = "system.hamiltonian"
        stated = None
        if self.period is not None:
            stated = self.period if _is_number(self.period) else self._real(
                self._value(self._period_tree, values, "system.period"), "system.period", values)
            if not (math.isfinite(stated) and stated > 0):
                raise UserError(f"system.period = {stated:g} at {values}: a period is a finite time > 0 (s)")
        frequencies = [call_frequency(c, where, values) for c in self._calls]
        omega, multiples = fundamental(frequencies, f"{where} at {dict(values)}" if values else where, stated)
        K = harmonic_order(self._h, where, {id(c): n for c, n in zip(self._calls, multiples, strict=True)})
        if K > MAX_HARMONICS:
            raise UserError(f"{where}: its coefficients may hold the {K}th harmonic of Ω = {omega:.6g} rad/s; at most "
                            f"{MAX_HARMONICS}")
        N = 2 * K + 1
        times = 2 * math.pi / omega * np.arange(N) / N
        samples = [self._matrices({**values, TIME: t}) for t in times]
        A = np.array([a for a, _ in samples])
        k = np.arange(1, K + 1)[:, None] * 2 * math.pi * np.arange(N)[None, :] / N
        mod = Modulation(omega, A.mean(axis=0), np.tensordot(2 * np.cos(k) / N, A, 1),
                         np.tensordot(2 * np.sin(k) / N, A, 1), samples[0][1], np.zeros_like(A[0]),
                         np.zeros_like(A[0]))
        for phase in (0.1234567, 0.7654321):  # off the samples: what the series cannot hold shows here
            t = phase * 2 * math.pi / omega
            direct, series = self._matrices({**values, TIME: t})[0], mod.at(t)[0]
            if np.abs(direct - series).max() > 1e-10 * max(np.abs(A).max(), 1e-300):
                raise UserError(f"{where}: its coefficients are not a Fourier series of Ω = {omega:.6g} rad/s up to "
                                f"the {K}th harmonic at {dict(values)}")
        return mod

    def _dissipator(self, i: int, table: Mapping, names: list[str]) -> dict:
        """One dissipator table (keys checked against ``DISSIPATOR``): what it needs, its expressions parsed."""
        where = f"system.dissipators[{i}]"
        table = dict(table)  # checked against DISSIPATOR (check_items) by __init__
        for key in ("kind", "rate", "operator" if table.get("kind") == "lindblad" else "mode"):
            if key not in table:
                raise UserError(f"{where}.{key} is missing: {DISSIPATOR.keys[key].doc}")
        out = {"kind": table["kind"], "port": table.get("port", False), "table": table}
        if table["kind"] == "lindblad":
            out["operator"] = check_syntax(table["operator"], f"{where}.operator", self.modes, names)
        elif table["mode"] not in self.modes:
            raise UserError(f"{where}.mode must be one of {list(self.modes)}, got {table['mode']!r}")
        else:
            out["mode"] = table["mode"]
        for key in ("rate", "n", "m"):
            if key in table:
                value = table[key]
                out[key] = value if _is_number(value) else check_syntax(value, f"{where}.{key}", (), names)
        if out["port"] and _is_number(table.get("n", 0)) and table.get("n", 0) != 0:
            raise UserError(f"{where}.port: an output port is a vacuum bath (n = 0), got n = {table['n']!r}")
        return out

    def _value(self, spec, values, where: str) -> complex:
        if spec is None or _is_number(spec):
            return complex(0.0 if spec is None else spec)
        return _scalar(expand(spec, where, (), values), where, "a rate")

    def matrices(self, **params) -> tuple[np.ndarray, np.ndarray]:
        """(A, D) in rad/s at the parameter values ``params`` (absent ones at their defaults), read-only: made
        once per point (a grid's check and its run share them; the last MATRICES_KEPT points are kept)."""
        values = self.resolve(params)
        key = tuple(values.items())
        made = self._made.get(key)
        if made is None:  # a local first: another thread may clear the cache between the store and the return
            if self._calls:  # periodic in t: the period average (ω_ref's scale; a constant-A run refuses it)
                mod = self.periodic_modulation(values)
                A, D = mod.drift.copy(), mod.diffusion.copy()
            else:
                A, D = self._matrices(values)
            A.setflags(write=False)
            D.setflags(write=False)
            made = (A, D)
            if len(self._made) >= MATRICES_KEPT:
                self._made.clear()
            self._made[key] = made
        return made

    def _matrices(self, values: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.modes)
        M = quadratic_form(expand(self._h, "system.hamiltonian", self.modes, values), self.modes,
                           "system.hamiltonian")
        gamma = np.zeros((2 * n, 2 * n), dtype=complex)
        A_baths, D_baths = np.zeros((2 * n, 2 * n)), np.zeros((2 * n, 2 * n))
        for i, d in enumerate(self.dissipators):
            where = f"system.dissipators[{i}]"
            rate = self._real(self._value(d.get("rate"), values, f"{where}.rate"), f"{where}.rate", values)
            if rate < 0:
                raise UserError(f"{where}.rate = {rate:g} at {values}: a rate is >= 0")
            if d["kind"] == "lindblad":
                c = jump_vector(evaluate(d["operator"], f"{where}.operator", self.modes, values), self.modes,
                                f"{where}.operator")
                gamma += rate * np.outer(np.conj(c), c)
                continue
            occ = self._real(self._value(d.get("n"), values, f"{where}.n"), f"{where}.n", values)
            m = self._value(d.get("m"), values, f"{where}.m")
            if d["port"] and occ != 0:
                raise UserError(f"{where}.port: an output port is a vacuum bath, but n = {occ:g} at {values}")
            if occ < 0 or abs(m) ** 2 > occ * (occ + 1) * (1 + 1e-12):
                raise UserError(f"{where}: n = {occ:g}, m = {m:g} at {values}: a bath needs n >= 0 and "
                                "|m|² <= n(n + 1)")
            A_k, D_k = bath_matrices(d["kind"], self.modes.index(d["mode"]), rate, occ, m, n)
            A_baths += A_k
            D_baths += D_k
        return drift_diffusion(M, gamma, A_baths, D_baths)

    @staticmethod
    def _real(z: complex, where: str, values) -> float:
        if abs(z.imag) > 1e-12 * max(1.0, abs(z.real)):
            raise UserError(f"{where} = {z:g} at {values}: it must be real")
        return z.real

    def check_grid(self, grid: tuple) -> None:
        """Every grid point's (A, D) and ω_ref, computed once before any work: a non-Hermitian Hamiltonian, a
        negative rate or an impossible bath at any point is refused, naming the point."""
        _, dims, shape, arrays = grid
        for point in np.ndindex(shape):
            params = {k: np.broadcast_to(v, shape)[point].item() for k, v in arrays.items()}
            try:
                self._rate(self.resolve(params), self.matrices(**params)[0])
            except UserError as exc:
                at = ", ".join(f"{d} = {params[d]:g}" for d in dims)
                raise UserError(f"at the grid point {at}: {exc}" if dims else str(exc)) from None

    def reference_rate(self, params: Mapping[str, object]) -> float:
        """ω_ref: ``time_scale`` (a number or an expression of the parameters), or the spectral radius of A."""
        values = self.resolve(params)
        return self._rate(values, None if self._time is not None or _is_number(self.time_scale) else
                          self.matrices(**values)[0])

    def _rate(self, values: Mapping[str, object], A: np.ndarray | None) -> float:
        """ω_ref at ``values``: the number, the expression, or the spectral radius of ``A`` (A at values)."""
        if _is_number(self.time_scale):
            return float(self.time_scale)
        if self._time is not None:
            rate = self._real(self._value(self._time, values, "system.time_scale"), "system.time_scale", values)
            if not (math.isfinite(rate) and rate > 0):
                raise UserError(f"system.time_scale = {rate:g} at {values}: ω_ref must be a finite rate > 0")
            return rate
        from sde_com.physics.matrix import spectral_radius

        return spectral_radius(A)

    def branches(self, params: Mapping[str, object]) -> list[Branch]:
        """The one branch: (A, D) of the quadratic Hamiltonian and the dissipators (no mean field). A Hamiltonian
        periodic in t has none (its state is periodic: ``periodic_modulation``)."""
        if self._calls:
            raise UserError("system.hamiltonian depends on the time t: a modulated system's steady state is periodic; "
                            "compute it with [periodic] (sde_com.periodic_sweep), not a constant-A run")
        A, D = self.matrices(**self.resolve(params))
        return [Branch(0, MappingProxyType({}), A, D)]

    def thermal_covariance(self, params: Mapping[str, object]) -> np.ndarray:
        """Each mode in the thermal state of its baths: diag(n_k + ½, n_k + ½) with n_k the rate-weighted mean
        occupation of its thermal, squeezed and Brownian baths (where each bath alone would take it); vacuum for
        a mode with none (only ``lindblad`` dissipators, or no bath)."""
        values = self.resolve(params)
        weight, occupied = np.zeros(len(self.modes)), np.zeros(len(self.modes))
        for i, d in enumerate(self.dissipators):
            if d["kind"] != "lindblad":
                k, where = self.modes.index(d["mode"]), f"system.dissipators[{i}]"
                rate = self._value(d["rate"], values, f"{where}.rate").real
                weight[k] += rate
                occupied[k] += rate * self._value(d.get("n"), values, f"{where}.n").real
        occ = np.divide(occupied, weight, out=np.zeros_like(weight), where=weight > 0)
        return np.diag(np.repeat(occ + 0.5, 2))

    def output_ports(self, params: Mapping[str, object]) -> dict[str, float]:
        """Mode → amplitude decay rate into its port: half the rate of its vacuum bath marked ``port``."""
        values = self.resolve(params)
        return {d["mode"]: self._value(d["rate"], values, "rate").real / 2 for d in self.dissipators if d["port"]}

    def __reduce__(self):  # made again from its definition (a Dask worker's copy)
        d = self.definition()
        return (type(self), (d["modes"], d["hamiltonian"], d["dissipators"], d["parameters"], d["time_scale"],
                             d["units"], d.get("period")))

    def definition(self) -> dict:
        """The strings and tables it was made from (``HamiltonianSystem(**definition)`` less the name)."""
        return {"name": self.name, "modes": list(self.modes), "hamiltonian": self.hamiltonian,
                "dissipators": [d["table"] for d in self.dissipators],
                "parameters": {k: key.default for k, key in self.parameters.items()}, "time_scale": self.time_scale,
                "units": dict(self.units), **({"period": self.period} if self.period is not None else {})}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
