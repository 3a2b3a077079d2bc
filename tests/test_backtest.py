"""Backtest metrics on hand-made series with known answers, the report, CLI and calibration."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import liqfast as lf
from liqfast.backtest import backtest, baselines, intervals, rank, score, spearman
from liqfast.calibrate import SEARCH_SPACE, calibrate, load_profile, save_profile
from liqfast.model import Bars, ModelParams
from test_model import synthetic_bars


def test_rank_averages_ties() -> None:
    assert rank(np.array([10.0, 20.0, 10.0, 30.0])).tolist() == [0.5, 2.0, 0.5, 3.0]
    assert rank(np.array([5.0, 5.0, 5.0])).tolist() == [1.0, 1.0, 1.0]


def test_spearman_known_values() -> None:
    x = np.arange(20, dtype=float)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert math.isnan(spearman(x, np.ones(20)))
    # Classic textbook example: d² sum 2 over n = 5 → 1 − 6·2/(5·24) = 0.9
    assert spearman(np.array([1.0, 2, 3, 4, 5]), np.array([2.0, 1, 3, 4, 5])) == pytest.approx(0.9)


def test_top_decile_hit_and_capture() -> None:
    real = np.array([100.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0])  # n = 20 → k = 2
    pred = np.zeros(20)
    pred[0], pred[5] = 10, 9  # catches the 100 but not the 50
    s = score(pred, real)
    assert s.top_decile_hit == 0.5
    assert s.capture == pytest.approx((100 + 5) / real.sum())
    assert s.ratio == pytest.approx(19 / real.sum())
    perfect = score(real.copy(), real)
    assert (perfect.spearman, perfect.top_decile_hit) == (pytest.approx(1.0), 1.0)
    with pytest.raises(lf.InvalidInputError):
        score(pred[:5], real)


def test_score_counts_top_decile_bars() -> None:
    real = np.arange(30, dtype=float)  # k = 3: bars 27, 28, 29
    pred = real.copy()
    pred[28] = -1.0
    s = score(pred, real)
    assert (s.top_decile_bars, s.top_decile_hits) == (3, 2)
    assert s.as_dict()["top_decile_hits"] == 2 and s.top_decile_hit == pytest.approx(2 / 3)


def test_intervals_of_perfect_and_reversed_predictors() -> None:
    real = np.random.default_rng(3).lognormal(0, 1, 300)
    same = intervals(real.copy(), real, reps=50, block=10)
    assert same == {"spearman_ci": [pytest.approx(1.0), pytest.approx(1.0)], "top_decile_hit_ci": [1.0, 1.0]}
    rev = intervals(-real, real, reps=50, block=10)
    assert rev == {"spearman_ci": [pytest.approx(-1.0), pytest.approx(-1.0)], "top_decile_hit_ci": [0.0, 0.0]}


def test_intervals_are_deterministic_and_hold_the_estimate() -> None:
    rng = np.random.default_rng(5)
    real = rng.lognormal(0, 1, 400)
    pred = real * rng.lognormal(0, 0.8, 400)
    a, b = intervals(pred, real, reps=200, seed=1), intervals(pred, real, reps=200, seed=1)
    assert a == b and a != intervals(pred, real, reps=200, seed=2)
    s = score(pred, real)
    lo, hi = a["spearman_ci"]
    assert lo < s.spearman < hi and hi - lo < 0.2
    lo, hi = a["top_decile_hit_ci"]
    assert lo <= s.top_decile_hit <= hi and lo < hi


def test_intervals_cover_the_true_value_about_as_often_as_stated() -> None:
    # Series with clustered noise (AR(1) in time): the 90 % interval of Spearman should hold
    # the value of the process itself (from a very long series) in roughly 90 % of samples.
    def series(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z = np.empty(n)
        z[0] = rng.normal()
        e = rng.normal(size=n)
        for t in range(1, n):
            z[t] = 0.8 * z[t - 1] + 0.6 * e[t]
        real = np.exp(z + 0.5 * rng.normal(size=n))
        return np.exp(z + 0.5 * rng.normal(size=n)), real

    truth = spearman(*series(200_000, np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    covered = 0
    trials = 60
    for i in range(trials):
        pred, real = series(300, rng)
        lo, hi = intervals(pred, real, reps=200, block=20, seed=i)["spearman_ci"]
        covered += lo <= truth <= hi
    assert 0.75 <= covered / trials <= 1.0, covered


def test_intervals_reject_bad_arguments() -> None:
    x = np.arange(50, dtype=float)
    assert intervals(x, x, reps=np.int64(20), block=np.int32(5))["top_decile_hit_ci"] == [1.0, 1.0]
    for kw in ({"reps": 5}, {"reps": 10.5}, {"reps": True}, {"block": 0}, {"level": 1.0}, {"level": 0.0},
               {"level": math.nan}, {"level": "0.9"}):
        with pytest.raises(lf.InvalidInputError):
            intervals(x, x, **kw)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="at least 10"):
        intervals(x[:5], x[:5])
    with pytest.raises(lf.InvalidInputError):
        intervals(x[:20], x)


def test_baselines_are_causal() -> None:
    b = Bars.of([0, 1, 2], [100, 100, 100], [110, 105, 101], [90, 99, 95], [100, 100, 100], [1e6, 2e6, 3e6])
    (wl, ws), (rl, rs) = baselines(b)["wick_oi"], baselines(b)["return_oi"]
    assert math.isnan(wl[0])  # no OI before the first bar
    assert wl[1] == pytest.approx(0.01 * 1e6) and ws[1] == pytest.approx(0.05 * 1e6)  # OI at the bar's open
    assert wl[2] == pytest.approx(0.05 * 2e6)


def realized_from(bars: Bars, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realized liquidations that follow the down/up moves with noise (a plausible target)."""
    rng = np.random.default_rng(seed)
    down = (bars.open - bars.low) / bars.open
    up = (bars.high - bars.open) / bars.open
    return bars.ts_ms.copy(), 1e9 * down**1.5 * rng.lognormal(0, 0.3, len(bars)), 1e9 * up**1.5 * rng.lognormal(0, 0.3, len(bars))


def test_backtest_report_shape_and_warmup() -> None:
    bars = synthetic_bars(300, seed=21)
    real = realized_from(bars)
    rep = backtest(bars, real)
    for name in ("model", "wick_oi", "return_oi"):
        for side in ("long", "short"):
            assert set(rep[name][side]) == {"spearman", "top_decile_hit", "capture", "ratio", "top_decile_bars", "top_decile_hits"}
    assert rep["bars_scored"] == len(bars) - 1  # the first bar only builds the book
    later = backtest(bars, real, score_from=int(bars.ts_ms[200]))
    assert later["bars_scored"] == 100 and later["first_scored_ms"] == bars.ts_ms[200]
    # Strict causality: a change in the future does not change earlier predictions.
    cut = bars.slice(0, 250)
    a = backtest(cut, real)["series"]["pred_long"]
    b = rep["series"]["pred_long"][: len(a)]
    np.testing.assert_array_equal(a, b)
    # Realized rows missing for some bars: those bars are not scored.
    keep = np.arange(len(bars)) % 3 != 0
    part = backtest(bars, (real[0][keep], real[1][keep], real[2][keep]))
    assert part["bars_scored"] == int(keep[1:].sum())


def test_backtest_input_errors(tmp_path: Path) -> None:
    bars = synthetic_bars(50, seed=22)
    with pytest.raises(lf.InvalidBarsError, match="no bar has both"):
        backtest(bars, (np.array([1], np.int64), np.array([1.0]), np.array([1.0])))
    bad = tmp_path / "realized.csv"
    bad.write_text("ts_ms,long_usd,short_usd\n2,1,1\n1,1,1\n")
    with pytest.raises(lf.InvalidBarsError, match="must increase"):
        lf.model.read_realized(bad)
    bad.write_text("ts_ms,long_usd,short_usd\n1,-1,1\n")
    with pytest.raises(lf.InvalidBarsError, match="long_usd must be finite and >= 0"):
        lf.model.read_realized(bad)


def test_backtest_checks_realized_arrays() -> None:
    bars = synthetic_bars(60, seed=26)
    ts, lg, sh = realized_from(bars)
    swapped = ts.copy()
    swapped[[10, 11]] = swapped[[11, 10]]
    nan, neg = lg.copy(), sh.copy()
    nan[5], neg[7] = math.nan, -1.0
    for real, exc, words, index in (((swapped, lg, sh), lf.InvalidBarsError, r"must increase \(row 11\)", 11),
                                    ((ts, nan, sh), lf.InvalidBarsError, "long_usd must be finite and >= 0 \\(row 5", 5),
                                    ((ts, lg, neg), lf.InvalidBarsError, "short_usd must be finite and >= 0 \\(row 7", 7),
                                    ((ts, lg[:-1], sh), lf.InvalidBarsError, "long_usd has shape", None),
                                    ((ts + 0.5, lg, sh), lf.InvalidBarsError, "not a whole number of ms", 0),
                                    ((ts, lg), lf.InvalidInputError, "realized must be a", None)):
        with pytest.raises(exc, match=words) as info:
            backtest(bars, real)  # type: ignore[arg-type]
        assert getattr(info.value, "index", None) == index
    with pytest.raises(lf.InvalidInputError, match="score_from"):
        backtest(bars, (ts, lg, sh), score_from="x")  # type: ignore[arg-type]
    # Lists are fine.
    assert backtest(bars, (ts.tolist(), lg.tolist(), sh.tolist()))["bars_scored"] == len(bars) - 1


def test_score_and_intervals_take_sequences_and_check_them() -> None:
    assert score([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).spearman == pytest.approx(1.0)  # type: ignore[arg-type]
    x = list(range(40))
    assert intervals(x, x, reps=20)["spearman_ci"] == pytest.approx([1.0, 1.0])  # type: ignore[arg-type]
    for bad, exc in ((([1.0, math.nan, 3.0], [1.0, 2.0, 3.0]), lf.InvalidInputError),
                     ((["a"], [1.0]), lf.InvalidArrayError), (([[1.0]], [1.0]), lf.InvalidArrayError),
                     (([1.0, 2.0], [1.0]), lf.InvalidInputError)):
        with pytest.raises(exc):
            score(*bad)  # type: ignore[arg-type]
    for seed in (-1, 1.5, "1"):
        with pytest.raises(lf.InvalidInputError, match="seed"):
            intervals(np.arange(20.0), np.arange(20.0), seed=seed)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="rounds"):
        calibrate(synthetic_bars(80), realized_from(synthetic_bars(80)), rounds=-1)


def write_csvs(tmp_path: Path, bars: Bars, real: tuple) -> tuple[Path, Path]:
    bp, rp = tmp_path / "bars.csv", tmp_path / "realized.csv"
    bp.write_text("ts_ms,open,high,low,close,oi_close_usd,taker_net_base\n" + "\n".join(
        f"{t},{o},{h},{lo},{c},{oi}," for t, o, h, lo, c, oi in zip(bars.ts_ms, bars.open, bars.high, bars.low, bars.close, bars.oi_close_usd)))
    rp.write_text("ts_ms,long_usd,short_usd\n" + "\n".join(f"{t},{a},{b}" for t, a, b in zip(*real)))
    return bp, rp


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "liqfast", *args], capture_output=True, text=True, timeout=300)


def test_cli_backtest_json_plot_and_calibrate(tmp_path: Path) -> None:
    bars = synthetic_bars(400, seed=23)
    real = realized_from(bars, seed=1)
    bp, rp = write_csvs(tmp_path, bars, real)
    out = run_cli("backtest", "--bars", str(bp), "--realized", str(rp), "--json", "--score-from", str(int(bars.ts_ms[100])))
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["bars_scored"] == 300 and "series" not in rep
    assert set(rep) >= {"model", "wick_oi", "return_oi"}
    assert "spearman_ci" not in rep["model"]["long"] and rep["model"]["long"]["top_decile_bars"] == 30
    out = run_cli("backtest", "--bars", str(bp), "--realized", str(rp), "--json", "--bootstrap", "50")
    assert out.returncode == 0, out.stderr
    for name in ("model", "wick_oi", "return_oi"):
        for side in ("long", "short"):
            s = json.loads(out.stdout)[name][side]
            assert s["spearman_ci"][0] <= s["spearman_ci"][1] and 0 <= s["top_decile_hit_ci"][0] <= s["top_decile_hit_ci"][1] <= 1
    out = run_cli("backtest", "--bars", str(bp), "--realized", str(rp), "--bootstrap", "50")
    assert out.returncode == 0 and "spearman 90%" in out.stdout, out.stderr
    bad = run_cli("backtest", "--bars", str(bp), "--realized", str(rp), "--bootstrap", "3")
    assert bad.returncode == 2 and "bootstrap" in bad.stderr
    png = tmp_path / "bt.png"
    out = run_cli("backtest", "--bars", str(bp), "--realized", str(rp), "--plot", str(png))
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "spearman" in out.stdout
    prof = tmp_path / "profile.json"
    out = run_cli("calibrate", "--bars", str(bp), "--realized", str(rp), "--out", str(prof), "--rounds", "1",
                  "--fit-until", str(int(bars.ts_ms[300])))
    assert out.returncode == 0, out.stderr
    p = load_profile(prof)
    assert p.fitted_until_ms < bars.ts_ms[300] and p.scale["binance-usdm"] > 0
    out = run_cli("backtest", "--bars", str(bp), "--realized", str(rp), "--profile", str(prof), "--json",
                  "--score-from", str(int(bars.ts_ms[300])))
    assert out.returncode == 0, out.stderr
    oos = json.loads(out.stdout)
    assert oos["model"]["long"]["ratio"] == pytest.approx(1.0, rel=2.0)  # scale fitted in sample, applied out of sample
    bad = run_cli("backtest", "--bars", str(tmp_path / "nope.csv"), "--realized", str(rp))
    assert bad.returncode == 2 and "cannot read" in bad.stderr


def test_cli_checks_output_paths_before_the_work(tmp_path: Path) -> None:
    bars = synthetic_bars(120, seed=27)
    bp, rp = write_csvs(tmp_path, bars, realized_from(bars))
    (tmp_path / "adir").mkdir()
    for plot, words in ((tmp_path / "nodir" / "x.png", "no directory"), (tmp_path / "x.svgz", "must end in .png"),
                        (tmp_path / "adir", "is a directory")):
        out = run_cli("backtest", "--bars", str(bp), "--realized", str(rp), "--plot", str(plot))
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("liqfast: error: "), out.stderr
        assert words in out.stderr and out.stdout == ""
    assert not (tmp_path / "adir.png").exists()
    for args, words in ((("--out", str(tmp_path / "adir")), "is a directory"),
                        (("--out", str(tmp_path / "nodir" / "p.json")), "no directory"),
                        (("--out", str(tmp_path / "p.json"), "--rounds", "-1"), "--rounds must be >= 0")):
        out = run_cli("calibrate", "--bars", str(bp), "--realized", str(rp), *args)
        # One line, and no fit started ("calibrating" is the progress of the fit).
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("liqfast: error: "), out.stderr
        assert words in out.stderr and "calibrating" not in out.stderr, out.stderr


def test_calibration_improves_the_objective() -> None:
    bars = synthetic_bars(300, seed=24)
    real = realized_from(bars, seed=2)
    start = ModelParams(turnover_per_hour=0.2, intrabar=0.0, leverage_spread=0.0)
    small = {k: SEARCH_SPACE[k] for k in ("turnover_per_hour", "intrabar")}
    prof = calibrate(bars, real, base=start, space=small, rounds=1)
    from liqfast.calibrate import _objective

    base_obj = _objective(backtest(bars, real, params=start))
    assert prof.objective >= base_obj
    total_real = real[1][1:].sum() + real[2][1:].sum()
    rep = backtest(bars, real, params=prof.params, scale=prof.scale["binance-usdm"])
    assert rep["model"]["long"]["ratio"] * real[1][1:].sum() + rep["model"]["short"]["ratio"] * real[2][1:].sum() == pytest.approx(total_real, rel=1e-6)


def test_profile_round_trip_and_errors(tmp_path: Path) -> None:
    from liqfast.calibrate import Profile

    p = Profile(params=ModelParams(intrabar=0.3), scale={"binance-usdm": 0.1})
    path = save_profile(p, tmp_path / "p.json")
    assert load_profile(path).params.intrabar == 0.3
    (tmp_path / "bad.json").write_text('{"params": 5}')
    with pytest.raises(lf.InvalidInputError, match="not a liqfast profile"):
        load_profile(tmp_path / "bad.json")
    with pytest.raises(lf.InvalidInputError, match="unknown parameter"):
        calibrate(synthetic_bars(80), realized_from(synthetic_bars(80)), space={"nope": (1,)})


def test_builtin_profile_is_usable(tmp_path: Path) -> None:
    from liqfast.calibrate import builtin_profile

    p = builtin_profile()
    assert p.venue == "binance-usdm" and p.scale["binance-usdm"] > 0 and p.bars > 1000
    assert load_profile("builtin:btc-1h") == p
    with pytest.raises(lf.InvalidInputError, match="unknown built-in profile"):
        load_profile("builtin:nope")
    bars = synthetic_bars(120, seed=25)
    bp, rp = write_csvs(tmp_path, bars, realized_from(bars))
    for profile in ("builtin:btc-1h", "none"):
        out = run_cli("backtest", "--bars", str(bp), "--realized", str(rp), "--profile", profile, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["scale"] == (1.0 if profile == "none" else p.scale["binance-usdm"])


def test_calibrate_and_helpers_check_arguments_before_work() -> None:
    bars = synthetic_bars(80, seed=23)
    real = (bars.ts_ms, np.ones(len(bars)), np.ones(len(bars)))
    # These raised AttributeError / TypeError (the bad progress only after a first replay).
    for kw, words in ((dict(bars=None, fit_until=5), "bars must be a liqfast.model.Bars"),
                      (dict(space={"intrabar": 0.5}), "search space of intrabar must be a sequence"),
                      (dict(space={"intrabar": "0.5"}), "search space of intrabar must be a sequence"),
                      (dict(space=[("intrabar", [0.5])]), "space must be a mapping"),
                      (dict(progress=5), "progress must be a callable")):
        args: dict = dict(bars=bars, realized=real, rounds=1, space={"intrabar": [0.2]})
        args.update(kw)
        with pytest.raises(lf.InvalidInputError, match=words):
            calibrate(args.pop("bars"), args.pop("realized"), **args)
    with pytest.raises(lf.InvalidInputError, match="bars must be a liqfast.model.Bars"):
        baselines(5)  # type: ignore[arg-type]
    with pytest.raises(lf.InvalidInputError, match="profile path must be a str"):
        load_profile(5)  # type: ignore[arg-type]
    x = np.arange(20, dtype=float)
    assert intervals(x, x, reps=10, level=np.float32(0.9))["spearman_ci"] == [1.0, 1.0]  # type: ignore[arg-type]


def test_cli_map_and_tiers_import_errors_are_one_line(tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("entry,qty,side,leverage\n90000,1,long,10\n90000,1\n")
    zero = tmp_path / "zero.csv"
    zero.write_text("entry,qty,side,leverage\n90000,0,long,10\n")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00entry")
    # Each of these ended in a traceback (FileNotFoundError, AttributeError, ZeroDivisionError,
    # UnicodeDecodeError, numpy ValueErrors).
    for args, words in ((["map", str(tmp_path / "nope.csv")], "cannot read"),
                        (["map", str(tmp_path)], "cannot read"),
                        (["map", str(short)], "fewer fields than the header"),
                        (["map", str(zero)], "qty must be > 0"),
                        (["map", str(binary)], "not a CSV text file"),
                        (["map", "--sample", "--positions", "-1"], "--positions must be >= 0"),
                        (["map", "--sample", "--rows", "0"], "--rows must be >= 1"),
                        (["map", "--sample", "--seed", "-1"], "--seed must be >= 0"),
                        (["tiers", "import", "binance-usdm", "BTCUSDT", str(tmp_path / "nope.json")], "cannot read")):
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr and words in out.stderr, (args, out.stderr)


def test_cli_backtest_scale_for_a_venue_the_profile_lacks(tmp_path: Path) -> None:
    bars = synthetic_bars(150, seed=29)
    bp, rp = write_csvs(tmp_path, bars, realized_from(bars))
    common = ("backtest", "--bars", str(bp), "--realized", str(rp), "--json")
    # The shipped profile is fitted on binance-usdm only: other venues used to get scale 1 silently.
    out = run_cli(*common, "--venue", "bybit-linear")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "has no scale for bybit-linear (it has binance-usdm)" in out.stderr
    base = json.loads(run_cli(*common).stdout)["model"]["long"]["ratio"]
    given = run_cli(*common, "--venue", "bybit-linear", "--scale", "0.05")
    assert given.returncode == 0, given.stderr
    doubled = run_cli(*common, "--scale", "0.05")
    half = run_cli(*common, "--scale", "0.025")
    r2, r1 = (json.loads(o.stdout)["model"]["long"]["ratio"] for o in (doubled, half))
    assert r2 == pytest.approx(2 * r1) and base > 0
    for bad in ("0", "-1", "nan", "inf"):
        out = run_cli(*common, "--scale", bad)
        assert out.returncode == 2 and "--scale must be a finite number > 0" in out.stderr, out.stderr
