"""The steady-state sweep of any system through the seam (``sweep(system=...)``): a toy three-mode system on
the per-point path (V against an independent Lyapunov solve, E_N over ``pair`` invariant under relabelling
the modes, NaN where unstable, branches NaN-padded, file round trip and CF), and the spinning resonator by
name on its fast chain, bitwise as before."""

import itertools
from types import MappingProxyType

import numpy as np
import pytest
import scipy.linalg
import xarray as xr
from conftest import assert_identical_output

from sde_com.errors import UserError
from sde_com.physics.resonator.system import SpinningResonator
from sde_com.physics.system import Branch, LinearSystem, register_system
from sde_com.results.catalogue import COORDINATES, PAIR_LOGNEG_LONG_NAME, VARIABLES
from sde_com.results.io import read_dataset, write_dataset
from sde_com.results.sweep import fast_chain, sweep, sweep_block, sweep_from_blocks
from sde_com.spec import Key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the CF checker's ioos_sos notice

CANONICAL = ("a", "b", "c")
KAPPA = 1.3e6  # rad/s; not a power of two, so the sweep's A/ω_ref really is a different matrix from A


def _rate(name, doc, default, **kw):
    return Key(name, "number", doc, "rad s-1", default, forms=("list",), **kw)


class ToyThreeModes(LinearSystem):
    """Modes a, b, c at zero detuning, each damped at κ into a bath of n_th quanta; two-mode squeezing g
    between a and the mode ``squeezed`` names (b or c), a beam splitter J between b and c. One branch, and a
    second one at g + split when split > 0. Stable for small g; for g ≳ κ the squeezing wins."""

    name = "toy_three_modes"
    modes = CANONICAL
    quadratures = tuple(f"{q}_{m}" for m in CANONICAL for q in ("x", "p"))
    parameters = MappingProxyType({k.name: k for k in (
        _rate("kappa", "energy decay rate of every mode", KAPPA, minimum=0.0, exclusive_minimum=True),
        _rate("g", "two-mode squeezing rate", 0.3 * KAPPA, minimum=0.0),
        _rate("J", "beam-splitter rate between b and c", 0.5 * KAPPA),
        Key("n_th", "number", "thermal occupation of every bath", "1", 0.0, minimum=0.0, forms=("list",)),
        _rate("split", "offset of g on a second branch (none at 0)", 0.0, minimum=0.0),
        Key("squeezed", "string", "the mode squeezed with a", "", "b", choices=("b", "c"), forms=("list",)),
    )})

    def reference_rate(self, params):
        return float(self.resolve(params)["kappa"])

    def branches(self, params):
        p = self.resolve(params)
        gs = [p["g"]] + ([p["g"] + p["split"]] if p["split"] > 0 else [])
        perm = [2 * CANONICAL.index(m) + q for m in self.modes for q in (0, 1)]  # this order → canonical rows
        out = []
        for i, g in enumerate(gs):
            A, D = canonical_matrices(p["kappa"], g, p["J"], p["n_th"], p["squeezed"])
            out.append(Branch(i, {"g": g}, A[np.ix_(perm, perm)], D[np.ix_(perm, perm)]))
        return out


def canonical_matrices(kappa, g, J, n_th, squeezed):
    """A and D (rad/s) in the order (x_a, p_a, x_b, p_b, x_c, p_c), vacuum variance 1/2."""
    A = -kappa * np.eye(6)
    s = 2 * CANONICAL.index(squeezed)
    for r, c, v in ((0, s, g), (1, s + 1, -g)):  # H = i g (a† s† − a s): ẋ_a = g x_s, ṗ_a = −g p_s
        A[r, c] = A[c, r] = v
    for (r, c) in ((2, 5), (4, 3)):  # H = J (b† c + b c†): ẋ_b = J p_c, ṗ_b = −J x_c, and b ↔ c
        A[r, c] = J
        A[r + 1, c - 1] = -J
    return A, kappa * (2.0 * n_th + 1.0) * np.eye(6)


class ToyPermuted(ToyThreeModes):
    """The same system with its modes listed in another order (c, a, b)."""

    name = "toy_three_modes_permuted"
    modes = ("c", "a", "b")
    quadratures = tuple(f"{q}_{m}" for m in ("c", "a", "b") for q in ("x", "p"))


register_system(ToyThreeModes)
register_system(ToyPermuted)

G_STABLE = np.linspace(0.0, 0.6, 4) * KAPPA
G_UNSTABLE = np.array([2.0, 3.0]) * KAPPA


def test_toy_has_no_fast_chain_and_the_resonator_has_one():
    assert fast_chain(ToyThreeModes()) is None
    assert fast_chain(SpinningResonator()) is not None


def test_cov_is_the_independent_lyapunov_solution():
    """V of the per-point path (scipy on A/κ, D/κ) against scipy's solve_continuous_lyapunov on A, D in
    rad/s. Both are backward-stable Bartels–Stewart solves; their difference is ≲ n·ε·cond·‖V‖ with n = 6,
    ε = 2.2e-16 and the Lyapunov condition number ~ ‖A‖/min|Re λ| ≲ 10 at these points (slowest decay
    ≥ 0.4κ, ‖A‖ ≲ 2κ): ~1e-14 ‖V‖. 1e-12 ‖V‖ sits above that and far below any physics (V ~ 1)."""
    ds = sweep(system=ToyThreeModes(), g=G_STABLE, n_th=0.2)
    assert ds["cov"].dims == ("g", "branch", "row", "col")
    assert list(ds["row"].values) == list(ToyThreeModes.quadratures)
    for g in G_STABLE:
        A, D = canonical_matrices(KAPPA, g, 0.5 * KAPPA, 0.2, "b")
        assert np.linalg.eigvals(A).real.max() < -0.3 * KAPPA
        V = scipy.linalg.solve_continuous_lyapunov(A, -D)
        got = ds["cov"].sel(g=g, branch=0).values
        np.testing.assert_allclose(got, V, rtol=0, atol=1e-12 * np.abs(V).max())
        assert np.abs(A @ got + got @ A.T + D).max() < 1e-12 * KAPPA * np.abs(V).max()
    assert ds["stable"].all() and not ds["marginal"].any()
    assert (ds["n_branches"] == 1).all()
    assert ds["logneg"].sel(pair="a-b").isel(g=-1, branch=0) > 0.0  # strong enough g entangles a and b
    np.testing.assert_equal(ds["logneg"].sel(pair="a-b").isel(g=0).values, 0.0)  # g = 0: vacuum, product


def test_logneg_over_pairs_is_invariant_under_relabelling_the_modes():
    """The same physics with the modes in the order (c, a, b): V is the permuted V and E_N of each unordered
    pair is the same (E_N is symmetric in the two modes). The two Lyapunov solves see permuted matrices:
    equal to rounding (same bound as above, 1e-12)."""
    params = dict(g=G_STABLE, squeezed=["b", "c"], n_th=0.1)
    ds, dp = sweep(system="toy_three_modes", **params), sweep(system="toy_three_modes_permuted", **params)
    assert list(ds["pair"].values) == ["a-b", "a-c", "b-c"]
    assert list(dp["pair"].values) == ["c-a", "c-b", "a-b"]
    assert ds["logneg"].dims == ("g", "squeezed", "branch", "pair")
    for label in ds["pair"].values:
        a, b = label.split("-")
        other = f"{a}-{b}" if f"{a}-{b}" in dp["pair"].values else f"{b}-{a}"
        np.testing.assert_allclose(dp["logneg"].sel(pair=other).values, ds["logneg"].sel(pair=label).values,
                                   rtol=1e-12, atol=1e-12)
    rows = ["x_c", "p_c", "x_a", "p_a", "x_b", "p_b"]
    np.testing.assert_allclose(dp["cov"].values, ds["cov"].sel(row=rows, col=rows).values, rtol=0,
                               atol=1e-12 * float(np.abs(ds["cov"]).max()))
    squeezed_c = ds["logneg"].sel(squeezed="c").isel(g=-1)
    assert squeezed_c.sel(pair="a-c") > 0 and squeezed_c.sel(pair="a-b") >= 0


def test_unstable_points_are_nan_never_zero_and_branches_are_padded():
    g = np.concatenate([G_STABLE[:2], G_UNSTABLE])
    ds = sweep(system=ToyThreeModes(), g=g, split=[0.0, 0.1 * KAPPA])
    for gi in g:
        A, _ = canonical_matrices(KAPPA, gi, 0.5 * KAPPA, 0.0, "b")
        assert bool(ds["stable"].sel(g=gi, split=0.0, branch=0)) == (np.linalg.eigvals(A).real.max() < 0)
    unstable = ~ds["stable"]
    assert unstable.sel(g=G_UNSTABLE).all()
    assert ds["logneg"].where(unstable).isnull().all()
    assert ds["cov"].where(unstable).isnull().all()
    assert ds["logneg"].where(ds["stable"]).notnull().sum() == ds["stable"].sum() * 3
    # two branches only where split > 0: the second is padded (NaN, not stable) elsewhere
    assert ds["n_branches"].sel(split=0.0).values.tolist() == [1] * 4
    assert ds["n_branches"].sel(split=0.1 * KAPPA).values.tolist() == [2] * 4
    assert not ds["stable"].sel(split=0.0, branch=1).any()
    assert ds["logneg"].sel(split=0.0, branch=1).isnull().all()


def test_blocks_concatenated_equal_the_whole_sweep_bitwise():
    system = ToyThreeModes()
    params = dict(split=[0.0, 0.1 * KAPPA], g=G_STABLE)  # the blocks have one and two branches
    whole = sweep(system=system, **params)
    blocks = [sweep_block(params, a, b, system=system) for a, b in ((0, 3), (3, 4), (4, 8))]
    assert blocks[0]["stable"].shape[1] == 1 and blocks[2]["stable"].shape[1] == 2
    xr.testing.assert_identical(sweep_from_blocks(params, blocks, system=system), whole)


def test_catalogue_labels_and_parameter_coordinates():
    ds = sweep(system=ToyThreeModes(), g=G_STABLE, squeezed=["b", "c"])
    assert ds["pair"].attrs["long_name"] == COORDINATES["pair"].long_name and "units" not in ds["pair"].attrs
    assert ds["marginal"].attrs["flag_meanings"] == VARIABLES["marginal"].flag_meanings
    assert ds["logneg"].attrs["long_name"] == PAIR_LOGNEG_LONG_NAME
    assert ds["cov"].attrs == VARIABLES["cov"].attrs
    assert "x_a, p_a" in ds["row"].attrs["long_name"]
    assert ds["g"].attrs == {"units": "rad s-1", "long_name": "two-mode squeezing rate"}
    assert ds["squeezed"].attrs == {"long_name": "the mode squeezed with a"}
    assert ds.attrs["system"] == "toy_three_modes" and ds.attrs["Conventions"] == "CF-1.8"
    assert ds.attrs["kappa"] == KAPPA and "x_a" in ds.attrs["sde_com_conventions"]


def test_file_round_trip_and_cf(tmp_path):
    ds = sweep(system=ToyThreeModes(), g=np.concatenate([G_STABLE, G_UNSTABLE]), squeezed=["b", "c"])
    path = write_dataset(ds, tmp_path / "toy.nc")
    back = read_dataset(path)
    assert back["pair"].dtype.kind == "U" and back["squeezed"].dtype.kind == "U"
    assert back["marginal"].dtype == bool and back["stable"].dtype == bool
    assert_identical_output(back, ds)
    pytest.importorskip("compliance_checker.runner")
    from test_cf import assert_cf_clean

    assert_cf_clean(path)


def test_parameters_are_checked_against_the_system():
    toy = ToyThreeModes()
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['detuning'\]; allowed: \['kappa'"):
        sweep(system=toy, detuning=1.0)
    with pytest.raises(UserError, match=r"^kappa must be > 0 \(a finite real number, unit: rad s-1\)"):
        sweep(system=toy, kappa=[1.0, -1.0])
    with pytest.raises(UserError, match="squeezed must be one of 'b', 'c'"):
        sweep(system=toy, squeezed="d")
    with pytest.raises(UserError, match="g must be"):
        sweep(system=toy, g=[[1.0, 2.0]])
    with pytest.raises(UserError, match="revival factor .* not for system 'toy_three_modes'"):
        sweep(system=toy, g=G_STABLE, revival=True)
    with pytest.raises(UserError, match="unknown system 'nope'"):
        sweep(system="nope")
    with pytest.raises(UserError, match="system must be a LinearSystem"):
        sweep(system=3)


def test_resonator_by_name_or_instance_is_the_default_sweep_bitwise():
    params = dict(detuning=np.linspace(0.2, 1.6, 5), direction=["ccw", "cw"], J=[0.0, 2e6], Omega=3e4)
    default = sweep(**params)
    for system in ("spinning_resonator", SpinningResonator()):
        xr.testing.assert_identical(sweep(system=system, **params), default)
    for name, var in default.data_vars.items():  # NaN in the same places, every bit equal
        other = sweep(system="spinning_resonator", **params)[name].values
        assert var.values.tobytes() == other.tobytes(), name
    assert "marginal" not in default and "pair" not in default.dims
    assert default.attrs["system"] == "spinning_resonator"  # every file names its system


def test_every_pair_of_modes_is_reported_once():
    ds = sweep(system=ToyThreeModes())
    expected = [f"{a}-{b}" for a, b in itertools.combinations(CANONICAL, 2)]
    assert list(ds["pair"].values) == expected and ds["logneg"].dims == ("branch", "pair")
