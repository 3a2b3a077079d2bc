"""The estimation model: Rust replay against the straightforward numpy reference, invariants,
bad bars, heatmap replay, checkpoints, evidence, multi-venue aggregation."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest

import liqfast as lf
from liqfast.model import Bars, LiveModel, ModelParams, auto_grid, auto_resolution, replay
from model_reference import ReferenceModel

H = 3_600_000


def synthetic_bars(n: int = 400, seed: int = 0, bar_ms: int = H, vol: float = 0.006, price: float = 60_000.0) -> Bars:
    """A random walk with occasional jumps and an OI path that trends, drops on jumps and
    recovers — enough to exercise consumption, pro-rata closing and opening."""
    rng = np.random.default_rng(seed)
    ret = rng.normal(0, vol, n) + np.where(rng.random(n) < 0.03, rng.normal(0, 5 * vol, n), 0)
    close = price * np.exp(np.cumsum(ret))
    open_ = np.r_[price, close[:-1]]
    wick = np.abs(rng.normal(0, vol, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    oi = 5e9 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, n) - 3 * np.abs(np.minimum(ret, 0)) * (np.abs(ret) > 2 * vol)))
    ts = 1_750_000_000_000 + np.arange(n, dtype=np.int64) * bar_ms
    taker = rng.normal(0, 50, n)
    return Bars.of(ts, open_, high, low, close, oi, taker)


@pytest.mark.parametrize(
    "params",
    [
        ModelParams(prune_below=0.0),
        ModelParams(prune_below=0.0, entry_rule="typical", leverage_spread=0.0, turnover_per_hour=0.0, intrabar=0.0),
        ModelParams(prune_below=0.0, entry_rule="close", turnover_per_hour=0.2, turnover_leverage_exponent=1.0, decay_per_hour=0.01),
        ModelParams(prune_below=0.0, entry_points=5, intrabar=1.0, leverage_mix=((3.0, 1.0), (125.0, 1.0))),
        ModelParams(prune_below=0.0, background=0.05, leverage_tilt=-0.5),
        ModelParams(prune_below=0.0, swing=0.1, swing_exponent=2.0),
        ModelParams(prune_below=0.0, background=0.02, swing=0.05),
    ],
)
def test_replay_matches_reference(params: ModelParams) -> None:
    bars = synthetic_bars(300, seed=2)
    res = replay(bars, params=params, grid=None)
    ref = ReferenceModel(params)
    pl, ps = ref.replay(bars)
    live = ~res.warmup
    np.testing.assert_allclose(res.long_usd[live], pl[live], rtol=1e-7, atol=1e-3)
    np.testing.assert_allclose(res.short_usd[live], ps[live], rtol=1e-7, atol=1e-3)
    assert res.long_usd[live].sum() > 0 and res.short_usd[live].sum() > 0
    got = res.model._core.side_usd(0)
    assert got == pytest.approx((ref.side_usd(0), ref.side_usd(1)), rel=1e-9)


def test_book_tracks_open_interest_on_both_sides() -> None:
    bars = synthetic_bars(200, seed=3)
    live = LiveModel(bar_ms=H)
    for i in range(len(bars)):
        live.step("binance-usdm", int(bars.ts_ms[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.oi_close_usd[i])
        lg, sh = live._core.side_usd(0)
        assert lg == pytest.approx(bars.oi_close_usd[i], rel=1e-9)
        assert sh == pytest.approx(bars.oi_close_usd[i], rel=1e-9)


def test_unknown_oi_keeps_the_book() -> None:
    bars = synthetic_bars(50, seed=4)
    live = LiveModel(bar_ms=H, params=ModelParams(turnover_per_hour=0.0))
    for i in range(10):
        live.step("binance-usdm", int(bars.ts_ms[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.oi_close_usd[i])
    before = live._core.side_usd(0)
    i = 10
    # A quiet bar inside the previous range with no OI: nothing opens or closes.
    c = bars.close[i - 1]
    live.step("binance-usdm", int(bars.ts_ms[i]), c, c * 1.0001, c * 0.9999, c, math.nan)
    after = live._core.side_usd(0)
    assert after[0] <= before[0] and after[1] <= before[1]


def test_checkpoint_restore_is_bit_exact() -> None:
    bars = synthetic_bars(300, seed=5)
    first, rest = bars.slice(0, 150), bars.slice(150, 300)
    params = ModelParams(swing=0.05, swing_exponent=2.0)
    a = LiveModel(bar_ms=H, scale=0.2, params=params)
    b = LiveModel(bar_ms=H, scale=0.2, params=params)
    for live in (a, b):
        for i in range(len(first)):
            live.step("binance-usdm", int(first.ts_ms[i]), first.open[i], first.high[i], first.low[i], first.close[i],
                      first.oi_close_usd[i], first.taker_net_base[i])
    blob = a.checkpoint()
    c = LiveModel.restore(blob)
    assert c.checkpoint() == blob
    outs = {id(m): [] for m in (b, c)}
    for m in (b, c):
        for i in range(len(rest)):
            outs[id(m)].append(m.step("binance-usdm", int(rest.ts_ms[i]), rest.open[i], rest.high[i], rest.low[i], rest.close[i],
                                       rest.oi_close_usd[i], rest.taker_net_base[i]))
    assert outs[id(b)] == outs[id(c)]
    assert b.checkpoint() == c.checkpoint()


@pytest.mark.parametrize("cut", [3, 17, 100, -9])
def test_corrupt_checkpoints_are_rejected(cut: int) -> None:
    bars = synthetic_bars(50, seed=6)
    live = replay(bars, grid=None).model
    blob = bytearray(live.checkpoint())
    if cut > 0:
        blob[len(blob) // 2 + cut] ^= 0xFF
    else:
        blob = blob[:cut]
    with pytest.raises(lf.CheckpointError):
        LiveModel.restore(bytes(blob))
    with pytest.raises(lf.CheckpointError):
        LiveModel.restore(b"\x05\x00")


def _with_header(blob: bytes, edit: Any) -> bytes:
    n = int.from_bytes(blob[:4], "little")
    head = msgspec.json.decode(blob[4:4 + n])
    edit(head)
    raw = msgspec.json.encode(head)
    return len(raw).to_bytes(4, "little") + raw + blob[4 + n:]


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h["venues"].__setitem__(0, "okx-linear"),  # scale/weights now name another venue
        lambda h: h["scale"].__setitem__("binance-usdm", -1.0),
        lambda h: h["scale"].__setitem__("binance-usdm", "x"),
        lambda h: h["scale"].pop("bybit-linear"),
        lambda h: h["params"].__setitem__("leverage_mix", [[5.0, 1.0]]),
        lambda h: h["params"].__setitem__("turnover_per_hour", 0.07),  # not seen in leverage points
        lambda h: (h["venues"].pop(), h["scale"].pop("bybit-linear"), h["weights"].pop("bybit-linear")),
        lambda h: h.__setitem__("symbol", "NOPE"),
        lambda h: h.__setitem__("extra", 1),
    ],
)
def test_checkpoint_headers_that_disagree_with_the_model_are_rejected(edit: Any) -> None:
    live = LiveModel(["binance-usdm", "bybit-linear"], bar_ms=H, scale={"binance-usdm": 0.5, "bybit-linear": 1.0})
    live.step("binance-usdm", 0, 100.0, 101.0, 99.0, 100.0, 1e6)
    blob = live.checkpoint()
    assert LiveModel.restore(_with_header(blob, lambda h: None)).checkpoint() == blob
    with pytest.raises(lf.CheckpointError, match="header"):
        LiveModel.restore(_with_header(blob, edit))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.5])
def test_scale_and_weights_must_be_finite_and_non_negative(bad: float) -> None:
    with pytest.raises(lf.InvalidInputError, match="scale"):
        LiveModel(scale=bad)
    with pytest.raises(lf.InvalidInputError, match="weights"):
        LiveModel(weights={"binance-usdm": bad})
    with pytest.raises(lf.InvalidInputError, match="scale"):
        replay(synthetic_bars(20, seed=1), scale=bad, grid=None)


@pytest.mark.parametrize(
    "mutate,words",
    [
        (lambda c: c["ts"].__setitem__(5, c["ts"][4]), "bar 5: timestamps must increase.*duplicate"),
        (lambda c: c["ts"].__setitem__(5, c["ts"][3]), "bar 5: timestamps must increase.*out of order"),
        (lambda c: c["high"].__setitem__(7, c["low"][7] * 0.9), "bar 7: high .* is below low"),
        (lambda c: c["open"].__setitem__(2, math.nan), "bar 2: open must be finite"),
        (lambda c: c["close"].__setitem__(2, -1.0), "bar 2: close must be finite and > 0"),
        (lambda c: c["oi"].__setitem__(9, -5.0), "bar 9: oi_close_usd must be >= 0"),
        (lambda c: c["open"].__setitem__(3, c["high"][3] * 1.5), "bar 3: open .* is outside"),
    ],
)
def test_bad_bars(mutate, words) -> None:  # type: ignore[no-untyped-def]
    b = synthetic_bars(20, seed=7)
    cols = {"ts": b.ts_ms.copy(), "open": b.open.copy(), "high": b.high.copy(), "low": b.low.copy(), "close": b.close.copy(), "oi": b.oi_close_usd.copy()}
    mutate(cols)
    with pytest.raises(lf.InvalidBarsError, match=words) as info:
        Bars.of(cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"], cols["oi"])
    assert info.value.index is not None


def test_gaps_are_marked_not_filled() -> None:
    b = synthetic_bars(60, seed=8)
    keep = np.r_[0:20, 25:60]  # five bars missing
    g = Bars.of(b.ts_ms[keep], b.open[keep], b.high[keep], b.low[keep], b.close[keep], b.oi_close_usd[keep])
    res = replay(g, grid=None)
    assert res.gap.tolist().count(True) == 1 and res.gap[20]
    assert len(res.ts_ms) == 55  # nothing interpolated


def test_csv_round_trip_and_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gzip

    b = synthetic_bars(30, seed=9)
    lines = ["ts_ms,open,high,low,close,oi_close_usd,taker_net_base"]
    lines += [f"{t},{o},{h},{lo},{c},{oi}," for t, o, h, lo, c, oi in zip(b.ts_ms, b.open, b.high, b.low, b.close, b.oi_close_usd)]
    p = tmp_path / "bars.csv.gz"
    p.write_bytes(gzip.compress("\n".join(lines).encode()))
    r = Bars.from_csv(p)
    np.testing.assert_array_equal(r.close, b.close)
    assert np.isnan(r.taker_net_base).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("ts_ms,open,high,low,close,oi_close_usd\n1,2,3,1,2,5\n2,x,3,1,2,5\n")
    with pytest.raises(lf.InvalidBarsError, match=r"bad.csv:3"):
        Bars.from_csv(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("ts_ms,open,high\n1,2,3\n")
    with pytest.raises(lf.InvalidBarsError, match="missing column"):
        Bars.from_csv(missing)
    with pytest.raises(lf.InvalidInputError, match="cannot read"):
        Bars.from_csv(tmp_path / "nope.csv")


def test_heatmap_replay_windows_and_filters() -> None:
    b = synthetic_bars(24 * 10, seed=10)
    res = replay(b, window="3d")
    h = res.heatmap
    assert h is not None and h.resolution_ms == auto_resolution(3 * 86_400_000, H)
    assert h.long.shape == (len(h.ts_ms), len(h.grid)) and len(h.ts_ms) <= 72
    assert h.ts_ms[0] >= b.ts_ms[-1] - 3 * 86_400_000
    # The last column is the live map now: equal to an exact snapshot on the same grid.
    snap_l, snap_s = res.model.map(h.grid)
    np.testing.assert_allclose(h.long[-1], snap_l, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(h.short[-1], snap_s, rtol=1e-6, atol=1e-3)
    # Longs sit below the price, shorts above (no long liquidation above the last close).
    centers = h.grid.centers()
    assert h.long[-1][centers > b.high[-1] * 1.0001].sum() == 0
    # Leverage filters partition the map.
    lo = replay(b, window="3d", leverage=(0, 20)).heatmap
    hi = replay(b, window="3d", leverage=(20.0001, math.inf)).heatmap
    assert lo is not None and hi is not None
    np.testing.assert_allclose(lo.long + hi.long, h.long, rtol=1e-6, atol=1e-3)
    with pytest.raises(lf.InvalidInputError, match="window must be one of"):
        replay(b, window="2w")


def test_auto_grid() -> None:
    g = auto_grid(60_000, 70_000)
    assert g.lo <= 45_000 and g.hi >= 87_500 and len(g) <= 2_000
    assert lf.model.auto_resolution(12 * H, 300_000) == 300_000
    assert lf.model.auto_resolution(365 * 86_400_000, H) == 86_400_000


def test_evidence_removes_mass_near_price() -> None:
    b = synthetic_bars(100, seed=11)
    live = replay(b, grid=None, scale=0.5).model
    before = live._core.side_usd(0)[0]
    price = float(np.median(live.cohorts("binance-usdm")["liq"][live.cohorts("binance-usdm")["side"] > 0]))
    removed = live.evidence("binance-usdm", "long", price, 1e6, tolerance=0.01)
    assert 0 < removed <= 1e6 + 1e-6
    assert live._core.side_usd(0)[0] == pytest.approx(before - removed / 0.5, rel=1e-9)
    with pytest.raises(lf.InvalidInputError):
        live.evidence("binance-usdm", "long", -1, 1)
    with pytest.raises(lf.InvalidInputError):
        live.evidence("binance-usdm", "sideways", 1, 1)  # type: ignore[arg-type]


def test_multi_venue_aggregation_with_weights() -> None:
    a, b = synthetic_bars(120, seed=12), synthetic_bars(120, seed=13)
    one_a = replay(a, venue="binance-usdm", grid=None)
    one_b = replay(b, venue="bybit-linear", grid=None)
    both = replay({"binance-usdm": a, "bybit-linear": b}, weights={"binance-usdm": 2.0, "bybit-linear": 0.5}, grid=None)
    np.testing.assert_allclose(both.long_usd, 2.0 * one_a.long_usd + 0.5 * one_b.long_usd, rtol=1e-9)
    # Venues with different bar times are merged on time.
    half = b.slice(0, 60)
    merged = replay({"binance-usdm": a.slice(0, 30), "okx-linear": half}, grid=None)
    assert len(merged.ts_ms) == 60


def test_params_are_validated() -> None:
    for bad in (dict(turnover_per_hour=1.5), dict(intrabar=-0.1), dict(leverage_mix=()), dict(leverage_points=0),
                dict(entry_points=0), dict(position_usd=0.0), dict(swing=-1.0), dict(swing=math.nan),
                dict(swing_exponent=0.0)):
        with pytest.raises(lf.InvalidInputError):
            LiveModel(params=ModelParams(**bad))  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError):
        lf._core.Model({"no_such_param": 1})
    with pytest.raises(lf.InvalidInputError, match="entry_rule"):
        lf._core.Model({"entry_rule": "vwap"})


def test_taker_tilt_hedges_the_passive_side() -> None:
    b = synthetic_bars(80, seed=14)
    even = replay(b, params=ModelParams(side_rule="even"), grid=None).model.cohorts("binance-usdm")
    tilt = replay(b, params=ModelParams(side_rule="taker", taker_tilt=1.0), grid=None).model.cohorts("binance-usdm")
    assert np.isnan(tilt["liq"]).sum() > np.isnan(even["liq"]).sum() == 0


def _one_row_profiles(b: Bars, price: Any, volume: Any) -> dict[str, tuple[Any, Any, Any]]:
    n = len(b)
    return {"binance-usdm": (np.broadcast_to(price, n).astype(float), np.broadcast_to(volume, n).astype(float),
                             np.arange(n + 1, dtype=np.int64))}


def test_bad_profiles_are_refused() -> None:
    b = synthetic_bars(30, seed=31)
    p = ModelParams(entry_rule="profile")
    ok = replay(b, params=p, grid=None, profiles=_one_row_profiles(b, b.close, 1.0))
    # A bucket named by its lower edge, a little below the low, enters at the low.
    edge = replay(b, params=p, grid=None, profiles=_one_row_profiles(b, b.low * 0.999, 1.0))
    at_low = replay(b, params=p, grid=None, profiles=_one_row_profiles(b, b.low, 1.0))
    np.testing.assert_array_equal(edge.long_usd, at_low.long_usd)
    assert not np.array_equal(ok.long_usd, at_low.long_usd)
    for price, volume, words in ((b.high * 2, 1.0, "profile price .* outside the bar's range"),
                                 (b.low * 0.5, 1.0, "profile price .* outside"),
                                 (np.nan, 1.0, "profile price NaN is outside"),
                                 (b.close, np.nan, "profile volume must be finite and >= 0, got NaN"),
                                 (b.close, -1.0, "profile volume must be finite and >= 0, got -1")):
        with pytest.raises(lf.InvalidBarsError, match=words) as info:
            replay(b, params=p, grid=None, profiles=_one_row_profiles(b, price, volume))
        assert info.value.index == 0
    with pytest.raises(lf.InvalidInputError, match="profiles for venues not replayed: bybit-linear"):
        replay(b, params=p, grid=None, profiles={"bybit-linear": _one_row_profiles(b, b.close, 1.0)["binance-usdm"]})
    with pytest.raises(lf.InvalidInputError, match=r"\(prices, volumes, offsets\)"):
        replay(b, params=p, grid=None, profiles={"binance-usdm": (b.close, b.close)})  # type: ignore[dict-item]
    with pytest.raises(lf.InvalidArrayError, match="offsets .* integers"):
        replay(b, params=p, grid=None, profiles={"binance-usdm": (b.close, b.close, np.arange(len(b) + 1) + 0.5)})
    live = LiveModel(params=p, bar_ms=H)
    with pytest.raises(lf.InvalidBarsError, match="profile price"):
        live.step("binance-usdm", int(b.ts_ms[0]), b.open[0], b.high[0], b.low[0], b.close[0], 1e9,
                  profile=[(b.high[0] * 3, 1.0)])
    with pytest.raises(lf.InvalidInputError, match="profile must be a list of"):
        live.step("binance-usdm", int(b.ts_ms[0]), b.open[0], b.high[0], b.low[0], b.close[0], 1e9,
                  profile="x")  # type: ignore[arg-type]
    live.step("binance-usdm", int(b.ts_ms[0]), b.open[0], b.high[0], b.low[0], b.close[0], 1e9,
              profile=[(b.close[0], 1.0)])


def test_leverage_filters_must_be_ordered_pairs() -> None:
    b = synthetic_bars(40, seed=32)
    res = replay(b)
    assert res.heatmap is not None
    grid = res.heatmap.grid
    for bad in ((50.0, 10.0), (math.nan, math.nan), (math.nan, 100.0), (-1.0, 10.0)):
        with pytest.raises(lf.InvalidInputError, match="leverage range must have 0 <= low <= high"):
            res.model.map(grid, leverage=bad)
        with pytest.raises(lf.InvalidInputError, match="leverage range must have 0 <= low <= high"):
            replay(b, leverage=bad)
    for bad in ((10.0,), 10.0, None, ("a", "b")):
        with pytest.raises(lf.InvalidInputError, match="leverage must be a"):
            res.model.map(grid, leverage=bad)  # type: ignore[arg-type]
        with pytest.raises(lf.InvalidInputError, match="leverage must be a"):
            replay(b, leverage=bad)  # type: ignore[arg-type]
    one = res.model.map(grid, leverage=(25.0, 25.0))
    assert one[0].sum() >= 0


def test_map_bands_is_one_map_per_band_in_one_scan() -> None:
    # Exact leverage points (no spread) so that 10x, 25x and 50x sit on band ends.
    b = synthetic_bars(60, seed=34)
    res = replay(b, params=ModelParams(leverage_spread=0.0))
    assert res.heatmap is not None
    grid, live = res.heatmap.grid, res.model
    bands = [(0.0, 10.0), (10.0, 25.0), (25.0, 50.0), (50.0, math.inf)]
    long, short = live.map_bands(grid, bands)
    assert long.shape == short.shape == (4, len(grid))
    whole = live.map(grid)
    # A cohort on a shared end counts once (in the first band): the rows add up to the whole.
    np.testing.assert_allclose(long.sum(0), whole[0], rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(short.sum(0), whole[1], rtol=1e-12, atol=1e-6)
    firsts = [(0.0, 10.0), (10.0001, 25.0), (25.0001, 50.0), (50.0001, math.inf)]
    for row, band in enumerate(firsts):
        lg, sh = live.map(grid, leverage=band)
        np.testing.assert_array_equal(long[row], lg)
        np.testing.assert_array_equal(short[row], sh)
    assert long[0].sum() > 0 and long[1].sum() > 0 and long[3].sum() > 0
    lg, sh = live.map_bands(grid, bands[1:2], side="short")
    assert lg.sum() == 0 and sh[0].sum() == pytest.approx(live.map(grid, side="short", leverage=(10.0, 25.0))[1].sum())
    for bad in ([], "0-10", None, [(0.0, 10.0), (10.0,)]):
        with pytest.raises(lf.InvalidInputError, match="bands must be|leverage must be a"):
            live.map_bands(grid, bad)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="leverage range must have 0 <= low <= high"):
        live.map_bands(grid, [(0.0, 10.0), (20.0, 10.0)])


def test_replay_window_and_resolution_are_checked() -> None:
    b = synthetic_bars(48, seed=33)
    auto = replay(b).heatmap
    assert auto is not None and auto.resolution_ms == auto_resolution(48 * H, H) and len(auto.ts_ms) > 0
    for window in (-1, 0, True, 1.5, 10**20, "2w"):
        with pytest.raises(lf.InvalidInputError, match="window must be one of"):
            replay(b, window=window)  # type: ignore[arg-type]
    for res_ms in (0, -H, 1.5 * H, True, 10**20):
        with pytest.raises(lf.InvalidInputError, match="resolution_ms must be"):
            replay(b, resolution_ms=res_ms)  # type: ignore[arg-type]
    # Columns longer than the window (or the span) used to leave an empty heatmap.
    with pytest.raises(lf.InvalidInputError, match="longer than the window"):
        replay(b, resolution_ms=100 * H)
    with pytest.raises(lf.InvalidInputError, match="longer than the window"):
        replay(b, window="12h", resolution_ms=24 * H)
    whole = replay(b, resolution_ms=48 * H).heatmap
    assert whole is not None and len(whole.ts_ms) >= 1
    assert replay(b, resolution_ms=100 * H, grid=None).heatmap is None  # no heatmap, nothing to fit


def test_live_model_arguments_are_checked() -> None:
    for kw, words in ((dict(symbol=None), "symbol must be a string"),
                      (dict(bar_ms="x"), "bar_ms of binance-usdm must be a whole number"),
                      (dict(bar_ms=1.5), "bar_ms .* whole number"),
                      (dict(bar_ms=0), "bar_ms .* whole number"),
                      (dict(bar_ms={"bybit-linear": H}), "bar_ms names venues not in the model"),
                      (dict(venues=["binance-usdm", "okx-linear"], bar_ms={"binance-usdm": H}), "bar_ms has no value for okx-linear"),
                      (dict(scale={"binance-usdm": 1.0, "bybit": 2.0}), "scale names venues not in the model: bybit"),
                      (dict(weights={"bybit": 2.0}), "weights names venues"),
                      (dict(scale="x"), "scale and weights must be numbers"),
                      (dict(venues="binance-usdm"), "venues must be a list"),
                      (dict(venues={}), "non-empty"),
                      (dict(params={"intrabar": 0.5}), "params must be a ModelParams"),
                      (dict(params=ModelParams(leverage_tilt=1000)), r"leverage_tilt must be a number in \[-4, 4\]"),
                      (dict(params=ModelParams(leverage_tilt=math.nan)), "leverage_tilt"),
                      (dict(params=ModelParams(leverage_mix=((10.0,),))), "leverage_mix must be"),  # type: ignore[arg-type]
                      (dict(params=ModelParams(leverage_mix=((1e300, 1.0),), leverage_tilt=4.0)), "leverage_mix must be"),
                      # A bool is no leverage, count or rate (True used to be 1x / 1 / 100 %).
                      (dict(params=ModelParams(leverage_mix=((True, 1.0),))), "leverage_mix must be"),
                      (dict(params=ModelParams(leverage_points=True)), "leverage_points must not be a bool"),  # type: ignore[arg-type]
                      (dict(params=ModelParams(intrabar=True)), "intrabar must not be a bool"),  # type: ignore[arg-type]
                      # Unused by the default side rule, but a bad value is still a mistake.
                      (dict(params=ModelParams(taker_tilt=math.inf)), r"taker_tilt must be in \[0, 1\]"),
                      (dict(params=ModelParams(taker_tilt=-0.5)), "taker_tilt")):
        with pytest.raises(lf.InvalidInputError, match=words):
            LiveModel(**kw)  # type: ignore[arg-type]
    LiveModel(params=ModelParams(leverage_tilt=-4.0))
    live = LiveModel(bar_ms=np.int64(H), scale={"binance-usdm": 2.0}, weights={})
    assert live.weights == {"binance-usdm": 1.0}
    b = synthetic_bars(3, seed=34)
    row = (b.open[0], b.high[0], b.low[0], b.close[0], 1e9)
    for ts in ("x", 1.5e12, 2**70, None):
        with pytest.raises(lf.InvalidInputError, match="ts_ms must be an int"):
            live.step("binance-usdm", ts, *row)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="open must be a number"):
        live.step("binance-usdm", int(b.ts_ms[0]), "x", *row[1:])  # type: ignore[arg-type]
    live.step("binance-usdm", int(b.ts_ms[0]), *row)
    with pytest.raises(lf.InvalidInputError, match="venue 'x' is not in this model"):
        live.evidence("x", "long", 1.0, 1.0)
    with pytest.raises(lf.InvalidInputError, match="usd must be a number"):
        live.evidence("binance-usdm", "long", 1.0, "1")  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="price must be a number"):
        live.evidence("binance-usdm", "long", "1", 1.0)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="side must be 'long' or 'short', got 1"):
        live.evidence("binance-usdm", 1, 1.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="side must be 'long', 'short' or None"):
        live.map(lf.PriceGrid(1.0, 2.0, 0.5), side=1)  # type: ignore[arg-type]
    blob = live.checkpoint()
    for like in (bytearray(blob), memoryview(blob), np.frombuffer(blob, np.uint8)):
        assert LiveModel.restore(like).checkpoint() == blob  # type: ignore[arg-type]
    with pytest.raises(lf.CheckpointError, match="expected bytes"):
        LiveModel.restore("not bytes")  # type: ignore[arg-type]


def test_bars_timestamps_must_be_whole_ms() -> None:
    cols = ([100.0, 100.0], [101.0, 101.0], [99.0, 99.0], [100.0, 100.0])
    assert Bars.of(np.array([1.7e12, 1.7e12 + H]), *cols).ts_ms.tolist() == [1_700_000_000_000, 1_700_003_600_000]
    assert Bars.of(np.array([1, 2], np.uint32), *cols).ts_ms.dtype == np.int64
    for ts, words in ((["a", "b"], "must be integers .* got strings"), ([0.0, math.nan], r"ts_ms\[1\] = nan"),
                      ([1.5, 2.5], r"ts_ms\[0\] = 1.5 is not a whole number"), ([0.0, 1e30], r"ts_ms\[1\]"),
                      ([True, False], "got booleans"), (np.array([1, 2**64 - 1], np.uint64), r"ts_ms\[1\].*int64 range")):
        with pytest.raises(lf.InvalidBarsError, match=words):
            Bars.of(ts, *cols)
    with pytest.raises(lf.InvalidBarsError, match="open must be numbers"):
        Bars.of([1, 2], ["x", "y"], *cols[1:])


def test_csv_timestamps_are_exact_integers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    head = "ts_ms,open,high,low,close,oi_close_usd\n"
    p = tmp_path / "bars.csv"
    # A spreadsheet's byte-order mark used to hide the ts_ms column.
    p.write_bytes(b"\xef\xbb\xbf" + (head + "1700000000000,2,3,1,2,5\n1.7000036e12,2,3,1,2,5\n").encode())
    assert Bars.from_csv(p).ts_ms.tolist() == [1_700_000_000_000, 1_700_003_600_000]
    p.write_text(head + "9223372036854775806,2,3,1,2,5\n9223372036854775807,2,3,1,2,5\n")
    assert Bars.from_csv(p).ts_ms[-1] == 2**63 - 1  # exact, not through a float
    for bad, words in (("nan", "not a whole number"), ("inf", "not a whole number"), ("1e30", "outside the int64 range"),
                       ("1700000000000.5", "not a whole number"), ("", "ts_ms is empty"), ("x", "not a number"),
                       ("9223372036854775808", "outside the int64 range")):
        p.write_text(head + "1,2,3,1,2,5\n" + bad + ",2,3,1,2,5\n")
        with pytest.raises(lf.InvalidBarsError, match=f"bars.csv:3: .*{words}") as info:
            Bars.from_csv(p)
        assert info.value.index == 1
    r = tmp_path / "realized.csv"
    r.write_bytes(b"\xef\xbb\xbfts_ms,long_usd,short_usd\n1,2,3\n2,0,0\n")
    assert lf.model.read_realized(r)[0].tolist() == [1, 2]
    r.write_text("ts_ms,long_usd,short_usd\n1,2,3\nnan,0,0\n")
    with pytest.raises(lf.InvalidBarsError, match="realized.csv:3"):
        lf.model.read_realized(r)


def test_realized_feedback_is_checked_and_checkpoints_stay_restorable() -> None:
    live = LiveModel(params=ModelParams(feedback_half_life_hours=24.0))
    blob = live.checkpoint()
    for args, words in (((1.5, 1.0, 1.0), "ts_ms must be an int"), (("x", 1.0, 1.0), "ts_ms must be an int"),
                        ((2**70, 1.0, 1.0), "ts_ms must be an int"), ((1, 1.0, "x"), "realized_usd must be"),
                        ((1, -1.0, 1.0), "predicted_usd must be"), ((1, 1.0, math.inf), "realized_usd must be"),
                        ((1, True, 1.0), "predicted_usd must be")):
        with pytest.raises(lf.InvalidInputError, match=words):
            live.observe_realized(*args)  # type: ignore[arg-type]
        assert live.checkpoint() == blob
    live.observe_realized(np.int64(1), 1e308, 1e308)
    with pytest.raises(lf.InvalidInputError, match="overflow"):
        live.observe_realized(2, 1e308, 1e308)
    live.observe_realized(3, math.nan, 1.0)  # unknown: ignored
    assert LiveModel.restore(live.checkpoint()).checkpoint() == live.checkpoint()
    with pytest.raises(lf.InvalidInputError, match="feedback_half_life_hours"):
        LiveModel(params=ModelParams(feedback_half_life_hours="x"))  # type: ignore[arg-type]


def test_grids_columns_profiles_and_scales_of_the_wrong_kind() -> None:
    b = synthetic_bars(40, seed=35)
    res = replay(b)
    assert res.heatmap is not None
    for bad in (None, 5, "auto"):
        with pytest.raises(lf.GridError, match="grid must be a liqfast.PriceGrid"):
            res.model.map(bad)  # type: ignore[arg-type]
    with pytest.raises(lf.GridError, match="grid must be a liqfast.PriceGrid"):
        replay(b, grid=5)  # type: ignore[arg-type]
    n = len(res.heatmap.ts_ms)
    assert res.map_at(-1)[0].shape == res.map_at(n - 1)[0].shape
    for i in (n, -n - 1, "0", 1.0):
        with pytest.raises(lf.InvalidInputError, match="column must be an int"):
            res.map_at(i)  # type: ignore[arg-type]
    for lev in ((0, 10**400), ("5", "10"), (True, 10)):
        with pytest.raises(lf.InvalidInputError, match="leverage must be a"):
            res.model.map(res.heatmap.grid, leverage=lev)  # type: ignore[arg-type]
    offsets = np.arange(len(b) + 1, dtype=np.int64)
    prices = b.close.reshape(-1, 1)
    with pytest.raises(lf.InvalidArrayError, match="must be 1-D"):
        replay(b, params=ModelParams(entry_rule="profile"), profiles={"binance-usdm": (prices, np.ones(len(b)), offsets)})
    for scale in ("2", True):
        with pytest.raises(lf.InvalidInputError, match="scale and weights must be numbers"):
            LiveModel(scale=scale)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="path must be a str"):
        Bars.from_csv(5)  # type: ignore[arg-type]


def test_step_refuses_bools_where_numbers_belong() -> None:
    live = LiveModel(bar_ms=H)
    b = synthetic_bars(3, seed=36)
    row = [b.open[0], b.high[0], b.low[0], b.close[0], 1e9]
    blob = live.checkpoint()
    for k, name in enumerate(("open", "high", "low", "close", "oi_close_usd")):
        bad = list(row)
        bad[k] = True
        with pytest.raises(lf.InvalidInputError, match=f"{name} must be a number, got bool"):
            live.step("binance-usdm", int(b.ts_ms[0]), *bad)
    with pytest.raises(lf.InvalidInputError, match="ts_ms must be an int within int64, got bool"):
        live.step("binance-usdm", True, *row)  # type: ignore[arg-type]
    assert live.checkpoint() == blob
    live.step("binance-usdm", np.int64(b.ts_ms[0]), *(np.float32(x) for x in row))  # type: ignore[arg-type]
