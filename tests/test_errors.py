"""Bad input always gets a typed error that names the problem, never a panic or a wrong number."""

from __future__ import annotations

import math

import numpy as np
import pytest

import liqfast as lf
from liqfast import _core
from liqfast.venues import margin_models


def arrays(n: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (np.full(n, 60_000.0), np.full(n, 0.1), np.ones(n, dtype=np.int8), np.full(n, 10.0))


@pytest.mark.parametrize(
    "kw,exc,words",
    [
        (dict(entry=math.nan), lf.InvalidPositionError, "entry must be finite"),
        (dict(entry=math.inf), lf.InvalidPositionError, "entry must be finite"),
        (dict(entry=-1.0), lf.InvalidPositionError, "entry must be > 0"),
        (dict(qty=0.0), lf.InvalidPositionError, "qty must be > 0"),
        (dict(qty=math.nan), lf.InvalidPositionError, "qty must be finite"),
        (dict(leverage=0.0), lf.InvalidPositionError, "leverage must be > 0"),
        (dict(leverage=math.inf), lf.InvalidPositionError, "leverage must be finite"),
        (dict(leverage=200.0), lf.LeverageTooHighError, "exceeds the maximum 125"),
        (dict(side="up"), lf.InvalidPositionError, "side must be"),
        (dict(side=0), lf.InvalidPositionError, "side must be"),
        (dict(leverage=None, margin=1.0), lf.InvalidPositionError, "does not cover the maintenance"),
        (dict(leverage=None, margin=math.nan), lf.InvalidPositionError, "margin must be finite"),
        (dict(leverage=10.0, margin=600.0), lf.InvalidInputError, "exactly one of leverage= or margin="),
        (dict(mmr=1.5), lf.InvalidInputError, "mmr must be in [0, 1)"),
        (dict(fee_rate=0.5), lf.InvalidInputError, "fee_rate must be in"),
        (dict(formula="nope"), lf.InvalidInputError, "no formula"),
        (dict(symbol="DOGE"), lf.UnknownSymbolError, "unknown symbol"),
        (dict(venue="ftx"), lf.UnknownVenueError, "unknown venue"),
        (dict(mode="portfolio", leverage=None, margin=1000.0), lf.InvalidInputError, "mode must be"),
        (dict(open_time="yesterday"), lf.InvalidInputError, "not an ISO"),
    ],
)
def test_scalar_errors(kw: dict, exc: type[Exception], words: str) -> None:
    args = dict(venue="binance-usdm", side="long", entry=60_000.0, qty=0.1, leverage=10.0)
    args.update(kw)
    if args.get("leverage") is None:
        args.pop("leverage")
    with pytest.raises(exc, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        lf.liquidation_price(args.pop("venue"), args.pop("side"), args.pop("entry"), args.pop("qty"), **args)


def test_errors_are_also_builtin_kinds() -> None:
    with pytest.raises(ValueError):
        lf.liquidation_price("binance-usdm", "long", -1, 1, leverage=2)
    with pytest.raises(LookupError):
        lf.liquidation_price("nope", "long", 1, 1, leverage=2)
    with pytest.raises(TypeError):
        lf.liquidation_prices("binance-usdm", np.ones(3, dtype=np.int8), np.ones(3, dtype=np.float32), np.ones(3), leverage=2.0)


@pytest.mark.parametrize(
    "mutate,exc,words",
    [
        (lambda e, q, s, l: (e.astype(np.float32), q, s, l), lf.InvalidArrayError, "entry must be a 1-D float64 array, got a 1-D float32"),
        (lambda e, q, s, l: (e, q.astype(np.int64), s, l), lf.InvalidArrayError, "qty must be a 1-D float64 array"),
        (lambda e, q, s, l: (e, q, s.astype(np.int64), l), lf.InvalidArrayError, "side must be a 1-D int8 array"),
        (lambda e, q, s, l: (e, q, s, l.astype(np.float32)), lf.InvalidArrayError, "leverage must be a 1-D float64"),
        (lambda e, q, s, l: (e.reshape(2, 5), q, s, l), lf.InvalidArrayError, "got a 2-D"),
        (lambda e, q, s, l: (np.repeat(e, 2)[::2], q, s, l), lf.InvalidArrayError, "C-contiguous"),
        (lambda e, q, s, l: (e[:9], q, s, l), lf.InvalidArrayError, "qty has 10 rows but entry has 9"),
        (lambda e, q, s, l: (e, q, s, l[:3]), lf.InvalidArrayError, "leverage has 3 rows but entry has 10"),
        (lambda e, q, s, l: (e, q, s.byteswap().view(s.dtype.newbyteorder()), l), None, None),
        (lambda e, q, s, l: (e.astype(">f8"), q, s, l), lf.InvalidArrayError, "float64"),
        (lambda e, q, s, l: ("60000", q, s, l), lf.InvalidArrayError, "numpy float64 array"),
    ],
)
def test_batch_array_errors(mutate, exc, words) -> None:  # type: ignore[no-untyped-def]
    e, q, s, l = mutate(*arrays())
    grid = lf.grid_around(60_000)
    if exc is None:  # int8 has no byte order: accepted
        lf.liquidation_prices("binance-usdm", s, e, q, leverage=l)
        return
    for call in (
        lambda: lf.liquidation_prices("binance-usdm", s, e, q, leverage=l),
        lambda: lf.liquidation_map(e, q, s, l, grid),
        lambda: lf.liquidation_heatmap(e, q, s, l, np.zeros(10, dtype=np.int64), 1, grid),
    ):
        with pytest.raises(exc, match=words.replace("(", r"\(")):
            call()


@pytest.mark.parametrize("row", [0, 7, 99_999])
@pytest.mark.parametrize("bad", [math.nan, -5.0, 0.0, math.inf])
def test_batch_names_first_bad_row(row: int, bad: float) -> None:
    n = 100_000  # large enough to run on several threads
    e, q, s, l = arrays(n)
    q = q.copy()
    q[row] = bad
    q[-1] = math.nan if row != n - 1 else q[-1]
    with pytest.raises(lf.InvalidPositionError, match=f"position {row}: qty") as info:
        lf.liquidation_prices("binance-usdm", s, e, q, leverage=l)
    assert info.value.index == row
    with pytest.raises(lf.InvalidPositionError) as info:
        lf.liquidation_map(e, q, s, l, lf.grid_around(60_000))
    assert info.value.index == row


def test_batch_bad_side_and_leverage_rows() -> None:
    e, q, s, l = arrays()
    s = s.copy()
    s[4] = 3
    with pytest.raises(lf.InvalidPositionError, match="position 4: side"):
        lf.liquidation_prices("binance-usdm", s, e, q, leverage=l)
    e, q, s, l = arrays()
    l = l.copy()
    l[2] = 500
    with pytest.raises(lf.LeverageTooHighError, match="position 2: leverage 500"):
        lf.liquidation_map(e, q, s, l, lf.grid_around(60_000))


def test_heatmap_errors() -> None:
    e, q, s, l = arrays()
    grid = lf.grid_around(60_000)
    t = np.arange(10, dtype=np.int64)
    with pytest.raises(lf.InvalidPositionError, match="position 5: time_index must be in"):
        lf.liquidation_heatmap(e, q, s, l, t, 5, grid)
    with pytest.raises(lf.InvalidPositionError, match="time_index"):
        lf.liquidation_heatmap(e, q, s, l, t - 3, 10, grid)
    with pytest.raises(lf.InvalidInputError, match="n_times must be a positive int"):
        lf.liquidation_heatmap(e, q, s, l, t, 0, grid)
    with pytest.raises(lf.GridError, match="exceeds the limit"):
        lf.liquidation_heatmap(e, q, s, l, t, 100_000, lf.PriceGrid(0, 1000, 1))
    with pytest.raises(lf.InvalidArrayError, match="time_index has 3 rows"):
        lf.liquidation_heatmap(e, q, s, l, t[:3], 10, grid)


@pytest.mark.parametrize(
    "args,words",
    [((10, 5, 1), "must be above lo"), ((0, 5, 0), "step must be > 0"), ((math.nan, 5, 1), "finite"),
     ((-1, 5, 1), "lo must be >= 0"), ((0, 1e9, 1), "limit is 1000000"),
     # (hi − lo)/step overflows, or the step vanishes in lo's precision: not a 1-bucket grid.
     ((0, 1e300, 1e-10), "too small for the range"), ((0, 1, 5e-324), "too small for the range"),
     ((1e20, 1e20 + 1e6, 1.0), "too small for the range")],
)
def test_grid_errors(args: tuple, words: str) -> None:
    with pytest.raises(lf.GridError, match=words):
        lf.PriceGrid(*args)


def test_grid_helper_errors() -> None:
    with pytest.raises(lf.GridError):
        lf.grid_step(0)
    with pytest.raises(lf.GridError, match="outside the range"):
        lf.grid_step(5e-324)  # used to return a step of 0
    with pytest.raises(lf.InvalidInputError):
        lf.grid_around(100, span=2)
    for step in (0, -1.0, math.nan, "1"):
        with pytest.raises(lf.GridError, match="grid step"):
            lf.grid_around(100, step=step)  # type: ignore[arg-type]


def test_batch_side_lists_take_only_plus_or_minus_one() -> None:
    e, q, s, l = arrays()
    good = lf.liquidation_prices("binance-usdm", s, e, q, leverage=l)
    as_list = [float(x) if i % 2 else ("long" if x > 0 else "short") for i, x in enumerate(s)]
    assert np.array_equal(lf.liquidation_prices("binance-usdm", as_list, e, q, leverage=l), good)
    for bad in (1.9, -1.5, 300, True, 0, None):
        side = [int(x) for x in s]
        side[3] = bad  # type: ignore[call-overload]
        with pytest.raises(lf.InvalidInputError, match=r"side\[3\]"):
            lf.liquidation_prices("binance-usdm", side, e, q, leverage=l)


@pytest.mark.parametrize("ref", [math.nan, math.inf, -1.0, 0.0, "x"])
def test_map_reference_price_must_be_a_price(ref: object) -> None:
    e, q, s, l = arrays()
    with pytest.raises(lf.InvalidInputError, match="ref_price"):
        lf.liquidation_map(e, q, s, l, lf.grid_around(60_000), ref_price=ref)  # type: ignore[arg-type]


def test_state_not_corrupted_by_errors() -> None:
    # A failed call leaves cached models and the pool usable and results unchanged.
    e, q, s, l = arrays(50_000)
    grid = lf.grid_around(60_000)
    good = lf.liquidation_map(e, q, s, l, grid).long.copy()
    bad = q.copy()
    bad[123] = -1
    with pytest.raises(lf.InvalidPositionError):
        lf.liquidation_map(e, bad, s, l, grid)
    np.testing.assert_array_equal(lf.liquidation_map(e, q, s, l, grid).long, good)


def test_margin_model_construction_errors() -> None:
    with pytest.raises(lf.UnknownVenueError):
        _core.MarginModel("nope", "standard", 1.0, 0.0, "quote", [(0, math.inf, 0.01, 0, 10)])
    with pytest.raises(lf.InvalidInputError, match="no formula"):
        _core.MarginModel("binance-usdm", "nope", 1.0, 0.0, "quote", [(0, math.inf, 0.01, 0, 10)])
    with pytest.raises(lf.InvalidTierTableError, match="tier unit"):
        _core.MarginModel("binance-usdm", "standard", 1.0, 0.0, "usd", [(0, math.inf, 0.01, 0, 10)])
    with pytest.raises(lf.InvalidTierTableError, match="contiguous"):
        _core.MarginModel("binance-usdm", "standard", 1.0, 0.0, "quote", [(0, 10, 0.01, 0, 10), (11, math.inf, 0.02, 0, 5)])
    with pytest.raises(lf.InvalidInputError, match="contract_size must be finite and > 0"):
        _core.MarginModel("binance-usdm", "standard", 0.0, 0.0, "quote", [(0, math.inf, 0.01, 0, 10)])


# --- Review findings: wrong numbers, raw exceptions -------------------------------------


@pytest.mark.parametrize(
    "entry,qty,exc,words",
    [
        (np.array([math.nan]), np.array([1.0]), lf.InvalidPositionError, "position 0: entry must be finite"),
        (np.array([60_000.0]), np.array([-1.0]), lf.InvalidPositionError, "position 0: qty must be > 0"),
        (np.full(2, 60_000.0), np.ones(1), lf.InvalidArrayError, "qty has 1 rows but entry has 2"),
        (np.full((2, 2), 60_000.0), np.ones((2, 2)), lf.InvalidArrayError, "got a 2-D"),
        (np.full(2, 60_000.0, dtype=np.float32), np.ones(2), lf.InvalidArrayError, "entry must be a 1-D float64"),
        (["60000"], [1.0], lf.InvalidArrayError, r"entry\[0\] must be a number"),
    ],
)
def test_max_leverage_checks_its_inputs(entry: object, qty: object, exc: type[Exception], words: str) -> None:
    # It used to give 1x for a NaN notional and broadcast mismatched or 2-D arrays.
    with pytest.raises(exc, match=words):
        lf.max_leverage("binance-usdm", entry, qty)


def test_max_leverage_is_the_entry_tier_maximum() -> None:
    model = lf.margin_model("binance-usdm")
    entry, qty = np.array([60_000.0, 60_000.0, 60_000.0]), np.array([0.1, 5.0, 1_000.0])
    want = [model.tiers[model.tier_at(q, e)][4] for e, q in zip(entry, qty)]
    np.testing.assert_array_equal(lf.max_leverage("binance-usdm", entry, qty), want)
    np.testing.assert_array_equal(lf.max_leverage("binance-usdm", list(entry), list(qty)), want)


@pytest.mark.parametrize(
    "wallet,legs",
    [
        (1.0, dict(long_entry=60_000, long_qty=1)),  # would liquidate at 60251, above its entry
        (1.0, dict(long_entry=60_000, long_qty=1, short_entry=60_000, short_qty=1)),  # used to give 125
        (0.0, dict(short_entry=60_000, short_qty=1)),
    ],
)
def test_hedge_wallet_must_cover_maintenance(wallet: float, legs: dict) -> None:
    with pytest.raises(lf.InvalidPositionError, match="does not cover the maintenance margin"):
        lf.hedge_liquidation_price("binance-usdm", wallet, **legs)
    # As the single-position call says of one leg.
    if len(legs) == 2:
        side, entry, qty = ("long", legs["long_entry"], legs["long_qty"]) if "long_qty" in legs else ("short", legs["short_entry"], legs["short_qty"])
        with pytest.raises(lf.InvalidPositionError, match="does not cover the maintenance margin"):
            lf.liquidation_price("binance-usdm", side, entry, qty, margin=wallet, mode="cross")


@pytest.mark.parametrize("wallet", [-100.0, math.nan, math.inf, "5000", None, True])
def test_hedge_wallet_must_be_a_balance(wallet: object) -> None:
    with pytest.raises(lf.InvalidInputError, match="wallet must be"):
        lf.hedge_liquidation_price("binance-usdm", wallet, long_entry=60_000, long_qty=1)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="short_qty must be a number"):
        lf.hedge_liquidation_price("binance-usdm", 5000, short_entry=60_000, short_qty="1")  # type: ignore[arg-type]


def test_hedge_solvent_at_the_later_entry_only_is_accepted() -> None:
    # Long 1 from 60k, then 3 short at 58k: the pair would be past liquidation at 60k but is
    # solvent at 58k, where the short was opened. Net short: liquidated a little above 58k.
    p = lf.hedge_liquidation_price("binance-usdm", 4_000, long_entry=60_000, long_qty=1, short_entry=58_000, short_qty=3)
    assert 58_000 < p < 59_000


@pytest.mark.parametrize(
    "kw,exc,words",
    [
        (dict(qty=5e-324), lf.InvalidPositionError, "qty must be a normal float"),
        (dict(qty=1e-310), lf.InvalidPositionError, "qty must be a normal float"),
        (dict(entry=5e-324), lf.InvalidPositionError, "entry must be a normal float"),
        (dict(leverage=5e-324), lf.InvalidPositionError, "leverage must be a normal float"),
    ],
)
def test_subnormal_factors_are_refused(kw: dict, exc: type[Exception], words: str) -> None:
    # A 5e-324 qty used to give 54216.9 for 54216.867...: too few bits to compute with.
    args = dict(entry=60_000.0, qty=0.1, leverage=10.0)
    args.update(kw)
    with pytest.raises(exc, match=words):
        lf.liquidation_price("binance-usdm", "long", args["entry"], args["qty"], leverage=args["leverage"])
    e, q, s, l = arrays(300)  # the branch-free pass refuses them too
    col = {"entry": e, "qty": q, "leverage": l}
    name, v = next(iter(kw.items()))
    col[name] = col[name].copy()
    col[name][257] = v
    with pytest.raises(exc, match=f"position 257: {words}"):
        lf.liquidation_prices("binance-usdm", s, col["entry"], col["qty"], leverage=col["leverage"])
    with pytest.raises(exc, match=f"position 257: {words}"):
        lf.liquidation_map(col["entry"], col["qty"], s, col["leverage"], lf.grid_around(60_000))
    # The smallest normal quantity still computes.
    assert lf.liquidation_price("binance-usdm", "long", 60_000.0, 2.2250738585072014e-308, leverage=10) > 0


def test_messages_print_numbers_as_they_are() -> None:
    e, q, s, l = arrays(3)
    with pytest.raises(lf.InvalidPositionError, match=r"time_index must be in \[0, n_times\), got 4611686018427387905$"):
        lf.liquidation_heatmap(e, q, s, l, np.array([0, 0, 2**62 + 1], dtype=np.int64), 3, lf.grid_around(60_000))
    with pytest.raises(lf.InvalidPositionError, match=r"entry must be > 0, got -1e300$"):
        lf.liquidation_price("binance-usdm", "long", -1e300, 1, leverage=10)
    with pytest.raises(lf.GridError, match=r"grid hi \(1e299\) must be above lo \(1e300\)"):
        lf.PriceGrid(1e300, 1e299, 1)
    with pytest.raises(lf.InvalidArrayError, match="leverage has 1 rows but entry has 3"):
        lf.liquidation_prices("binance-usdm", s, e, q, leverage=l[:1])


@pytest.mark.parametrize(
    "kw,exc,words",
    [
        (dict(entry="60000"), lf.InvalidInputError, "entry must be a number, got '60000'"),
        (dict(qty=None), lf.InvalidInputError, "qty must be a number, got None"),
        (dict(symbol=5), lf.InvalidInputError, "symbol must be a str, got 5"),
        (dict(tiers="x"), lf.InvalidTierTableError, "tiers must be a liqfast.TierTable"),
        (dict(open_time=math.nan), lf.InvalidInputError, "open_time must be finite epoch ms"),
        (dict(open_time=1e30), lf.InvalidInputError, "open_time must be finite epoch ms"),
        (dict(leverage=True), lf.InvalidInputError, "leverage must be a number, got True"),
        (dict(leverage=np.True_), lf.InvalidInputError, "leverage must be a number"),
        (dict(side=True), lf.InvalidPositionError, "side must be"),
        (dict(mmr="0.1"), lf.InvalidInputError, "mmr must be a number, got '0.1'"),
        (dict(maint_amount="1"), lf.InvalidInputError, "maint_amount must be a number"),
        (dict(leverage=None, margin="1000"), lf.InvalidInputError, "margin must be a number"),
        (dict(contract_size="1"), lf.InvalidInputError, "contract_size must be a number"),
        (dict(leverage=None, margin=5000.0, mode="cross", other_upnl="1"), lf.InvalidInputError, "other_upnl must be a number"),
        (dict(venue=None), lf.UnknownVenueError, "venue must be a venue id"),
        (dict(venue=["binance-usdm"], open_time=0), lf.UnknownVenueError, "venue must be a venue id"),
        (dict(maint_amount=-5.0), lf.InvalidInputError, "maint_amount must be finite and >= 0"),
    ],
)
def test_scalar_arguments_of_the_wrong_kind(kw: dict, exc: type[Exception], words: str) -> None:
    test_scalar_errors(kw, exc, words)


def test_batch_arguments_of_the_wrong_kind() -> None:
    e, q, s, l = arrays(3)
    grid = lf.grid_around(60_000)
    t = np.zeros(3, dtype=np.int64)
    calls = {
        "prices": lambda **kw: lf.liquidation_prices("binance-usdm", kw.pop("side", s), kw.pop("entry", e), q, leverage=kw.pop("leverage", l), **kw),
        "map": lambda **kw: lf.liquidation_map(kw.pop("entry", e), q, kw.pop("side", s), kw.pop("leverage", l), kw.pop("grid", grid), **kw),
        "heatmap": lambda **kw: lf.liquidation_heatmap(kw.pop("entry", e), q, kw.pop("side", s), kw.pop("leverage", l), t, 1, kw.pop("grid", grid), **kw),
    }
    cases = [
        (dict(leverage=True), lf.InvalidArrayError, "leverage must be a float or a float64 array, got True"),
        (dict(leverage=[10.0, True, 10.0]), lf.InvalidArrayError, r"leverage\[1\] must be a number, got True"),
        (dict(entry=[60_000.0, "60000", 60_000.0]), lf.InvalidArrayError, r"entry\[1\] must be a number"),
        (dict(open_time=[0, math.nan, 0]), lf.InvalidInputError, r"open_time\[1\]: open_time must be finite"),
        (dict(open_time=[0, 0, 2**64]), lf.InvalidInputError, r"open_time\[2\]"),
        (dict(open_time=math.nan), lf.InvalidInputError, "open_time must be finite"),
        (dict(symbol=5), lf.InvalidInputError, "symbol must be a str"),
        (dict(tiers="x"), lf.InvalidTierTableError, "tiers must be a liqfast.TierTable"),
        (dict(mmr="0.1"), lf.InvalidInputError, "mmr must be a number"),
        (dict(fee_rate=[0.1]), lf.InvalidInputError, "fee_rate must be a number"),
    ]
    for name, call in calls.items():
        for kw, exc, words in cases:
            with pytest.raises(exc, match=words):
                call(**dict(kw))
        if name != "prices":
            with pytest.raises(lf.GridError, match="grid must be a liqfast.PriceGrid"):
                call(grid="x")
    with pytest.raises(lf.InvalidInputError, match="mmr must be a number, got '0.1'"):
        lf.margin_model("binance-usdm").with_overrides(mmr="0.1")  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidPositionError, match="side must be"):
        lf.margin_model("binance-usdm").liquidation_price(True, 60_000, 1, leverage=10)


@pytest.mark.parametrize(
    "time_index,exc,words",
    [
        (2**64, lf.InvalidInputError, "time_index 18446744073709551616 is outside the int64 range"),
        ([0, 0, 2**64], lf.InvalidArrayError, r"time_index\[2\] must be an int64, got 18446744073709551616"),
        ([0, 0.5, 0], lf.InvalidArrayError, r"time_index\[1\] must be an int64, got 0.5"),  # was truncated to 0
        ([0, True, 0], lf.InvalidArrayError, r"time_index\[1\] must be an int64"),
        (True, lf.InvalidArrayError, "time_index must be an int or an int64 array, got True"),
    ],
)
def test_heatmap_time_index_values(time_index: object, exc: type[Exception], words: str) -> None:
    e, q, s, l = arrays(3)
    with pytest.raises(exc, match=words):
        lf.liquidation_heatmap(e, q, s, l, time_index, 2, lf.grid_around(60_000))


def test_heatmap_n_times_past_every_int() -> None:
    e, q, s, l = arrays(3)
    grid = lf.grid_around(60_000)
    with pytest.raises(lf.GridError, match="heatmap of 18446744073709551616 time rows exceeds the limit"):
        lf.liquidation_heatmap(e, q, s, l, 0, 2**64, grid)
    models, since = margin_models("binance-usdm")
    for bad in (True, "3", -1):
        with pytest.raises(lf.InvalidInputError, match="n_times must be a positive int"):
            _core.liquidation_heatmap(models, since, e, q, s, l, "leverage", 0, bad, grid)


def test_grid_arguments_of_the_wrong_kind() -> None:
    with pytest.raises(lf.GridError, match="grid lo must be a number, got '0'"):
        lf.PriceGrid("0", 10, 1)  # type: ignore[arg-type]
    with pytest.raises(lf.GridError, match="grid step must be a number, got True"):
        lf.PriceGrid(0, 10, True)
    grid = lf.PriceGrid(0, 10, 1)
    assert grid.locate(5) == 5 and grid.locate(-1) == -1 and grid.locate(math.inf) == 10
    for bad in (None, "1", math.nan):
        with pytest.raises(lf.InvalidInputError, match="price must be a number"):
            grid.locate(bad)  # type: ignore[arg-type]
    with pytest.raises(lf.GridError, match="price must be a number, got None"):
        lf.grid_step(None)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="price must be a number"):
        lf.grid_around("100")  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="span must be in"):
        lf.grid_around(100, span="0.3")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "qty,price,words",
    [
        (math.nan, 60_000.0, "qty must be finite"),
        (-1.0, 60_000.0, "qty must be > 0"),
        (5e-324, 60_000.0, "qty must be a normal float"),
        (1.0, math.nan, "price must be finite"),
        (1.0, -60_000.0, "price must be > 0"),
        (1.0, 0.0, "price must be > 0"),
    ],
)
def test_model_lookups_check_qty_and_price(qty: float, price: float, words: str) -> None:
    # tier_at used to put NaN and negative sizes in the first tier; usd_notional returned them.
    model = lf.margin_model("binance-usdm")
    for f in (model.tier_at, model.usd_notional):
        with pytest.raises(lf.InvalidPositionError, match=words):
            f(qty, price)
    with pytest.raises(lf.InvalidInputError, match="qty must be a number, got '1'"):
        model.tier_at("1", 60_000)  # type: ignore[arg-type]


@pytest.mark.parametrize("venue", ["binance-coinm", "bybit-inverse", "gate-inverse", "kucoin-inverse"])
def test_zero_entry_on_inverse_venues_is_a_position_error(venue: str) -> None:
    # The tier measure of an inverse coin-unit table divided by the entry: ZeroDivisionError.
    with pytest.raises(lf.InvalidPositionError, match="entry must be > 0"):
        lf.liquidation_price(venue, "long", 0.0, 1.0, leverage=10.0)


def test_reference_price_and_grid_helpers_take_numpy_numbers_not_bools() -> None:
    e, q, s, l = arrays()
    grid = lf.grid_around(60_000)
    for ref in (np.float32(60_000), np.int64(60_000)):
        assert lf.liquidation_map(e, q, s, l, grid, ref_price=ref).ref_price == 60_000.0  # type: ignore[arg-type]
    for bad in (True, 10**400):
        with pytest.raises(lf.InvalidInputError, match="ref_price must be a"):
            lf.liquidation_map(e, q, s, l, grid, ref_price=bad)
    assert lf.grid_around(60_000, span=np.float32(0.1), step=np.float32(10)).step == 10.0  # type: ignore[arg-type]
    for step in (True, 10**400):
        with pytest.raises(lf.GridError, match="grid step must be a finite number"):
            lf.grid_around(60_000, step=step)
