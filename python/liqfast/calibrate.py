"""Fit the model's free parameters on one period and save a profile the other commands load.

The fit maximises the mean of four in-sample scores — Spearman long and short, top-decile hit
long and short — by coordinate search over a small grid per parameter (a few hundred replays,
each a few milliseconds), then sets each venue's ``scale`` so that predicted USD matches
realized USD over the fit period. Only bars before ``fit_until`` are used: score the rest
with ``liqfast backtest --profile ... --score-from <fit_until>`` for an out-of-sample check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from .backtest import backtest
from .errors import InvalidInputError
from .model import Bars, ModelParams, _whole

__all__ = ["BUILTIN_PROFILES", "Profile", "SEARCH_SPACE", "builtin_profile", "calibrate", "load_profile", "save_profile"]

#: Candidate values per parameter, searched one parameter at a time.
SEARCH_SPACE: dict[str, Sequence[Any]] = {
    "leverage_spread": (0.0, 0.1, 0.2, 0.3, 0.45, 0.6),
    "entry_points": (1, 2, 3, 5),
    "turnover_per_hour": (0.005, 0.01, 0.02, 0.035, 0.05, 0.08, 0.12, 0.2),
    "turnover_leverage_exponent": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5),
    "intrabar": (0.0, 0.15, 0.3, 0.5, 0.7, 1.0),
    "leverage_tilt": (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5),
    "background": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2),
    "swing": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2),
    "swing_exponent": (1.0, 1.5, 2.0, 3.0),
    "feedback_half_life_hours": (0.0, 72.0, 168.0, 336.0),
}


class Profile(msgspec.Struct, kw_only=True):
    """A fitted model: parameters, per-venue USD scale, and where it was fitted."""

    params: ModelParams
    scale: dict[str, float]
    venue: str = "binance-usdm"
    symbol: str = "BTC"
    fitted_from_ms: int = 0
    fitted_until_ms: int = 0
    bars: int = 0
    objective: float | None = None
    in_sample: dict[str, Any] = {}


def save_profile(profile: Profile, path: str | Path) -> Path:
    p = Path(path)
    try:
        p.write_bytes(msgspec.json.format(msgspec.json.encode(profile), indent=2) + b"\n")
    except OSError as e:
        raise InvalidInputError(f"cannot write profile {p}: {e.strerror}") from None
    return p


#: Profiles shipped with the package (fitted on recorded BTC data; see data/profiles/).
BUILTIN_PROFILES = ("btc-1h",)


def builtin_profile(name: str = "btc-1h") -> Profile:
    """A shipped profile: ``btc-1h`` was fitted on four months of hourly Binance BTCUSDT
    bars against Binance + Bybit + OKX realized liquidations (so its scale maps Binance OI to
    the three venues' liquidations)."""
    from importlib import resources

    if name not in BUILTIN_PROFILES:
        raise InvalidInputError(f"unknown built-in profile {name!r}; known: {', '.join(BUILTIN_PROFILES)}")
    raw = (resources.files("liqfast") / "data" / "profiles" / f"{name}.json").read_bytes()
    return msgspec.json.decode(raw, type=Profile)


def load_profile(path: str | Path) -> Profile:
    """A profile from a file path, or ``builtin:<name>`` for a shipped one."""
    if not isinstance(path, (str, Path)):
        raise InvalidInputError(f"profile path must be a str or a Path, got {type(path).__name__}")
    if str(path).startswith("builtin:"):
        return builtin_profile(str(path).removeprefix("builtin:"))
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise InvalidInputError(f"cannot read profile {path}: {e.strerror}") from None
    try:
        return msgspec.json.decode(raw, type=Profile)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise InvalidInputError(f"{path} is not a liqfast profile: {e}") from None


def _objective(report: Mapping[str, Any]) -> float:
    m = report["model"]
    vals = [m["long"]["spearman"], m["short"]["spearman"], m["long"]["top_decile_hit"], m["short"]["top_decile_hit"]]
    return float(np.mean([v if math.isfinite(v) else 0.0 for v in vals]))


def calibrate(
    bars: Bars,
    realized: tuple[Any, Any, Any],
    *,
    venue: str = "binance-usdm",
    symbol: str = "BTC",
    fit_until: int | None = None,
    base: ModelParams | None = None,
    space: Mapping[str, Sequence[Any]] | None = None,
    rounds: int = 3,
    progress: Callable[[int, int, float], None] | None = None,
) -> Profile:
    """Fit on the bars before ``fit_until`` (ms; default all) in ``rounds`` rounds of
    coordinate search (0: only the scale is fitted). ``progress(done, total, best)`` is called
    after every replay."""
    # (A negative count ran no round at all, silently.)
    if not (_whole(rounds) and rounds >= 0):
        raise InvalidInputError(f"rounds must be a whole number >= 0, got {rounds!r}")
    if not isinstance(bars, Bars):
        raise InvalidInputError(f"bars must be a liqfast.model.Bars, got {type(bars).__name__}")
    if progress is not None and not callable(progress):
        raise InvalidInputError(f"progress must be a callable or None, got {type(progress).__name__}")
    if not (fit_until is None or _whole(fit_until)):
        raise InvalidInputError(f"fit_until must be a time in ms (int) or None, got {fit_until!r}")
    if fit_until is not None:
        n = int(np.searchsorted(bars.ts_ms, fit_until))
        if n < 50:
            raise InvalidInputError(f"only {n} bars before fit_until: need at least 50 to fit")
        bars = bars.slice(0, n)
    if space is not None and not isinstance(space, Mapping):
        raise InvalidInputError(f"space must be a mapping {{parameter: candidate values}}, got {type(space).__name__}")
    space = dict(space or SEARCH_SPACE)
    for k, values in space.items():
        if k not in ModelParams.__struct_fields__:
            raise InvalidInputError(f"unknown parameter {k!r} in the search space")
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
            raise InvalidInputError(f"search space of {k} must be a sequence of candidate values, got {values!r}")
    best = base or ModelParams()
    best_score = _objective(backtest(bars, realized, params=best, venue=venue, symbol=symbol))
    total = rounds * sum(len(v) for v in space.values())
    done = 0
    for _ in range(rounds):
        improved = False
        for name, values in space.items():
            for v in values:
                done += 1
                if getattr(best, name) == v:
                    continue
                trial = msgspec.structs.replace(best, **{name: v})
                s = _objective(backtest(bars, realized, params=trial, venue=venue, symbol=symbol))
                if s > best_score + 1e-9:
                    best, best_score, improved = trial, s, True
                if progress:
                    progress(done, total, best_score)
        if not improved:
            break
    report = backtest(bars, realized, params=best, venue=venue, symbol=symbol)
    m = report["model"]
    raw_pred = report["series"]["pred_long"].sum() + report["series"]["pred_short"].sum()
    real = report["series"]["real_long"].sum() + report["series"]["real_short"].sum()
    scale = float(real / raw_pred) if raw_pred > 0 else 1.0
    return Profile(
        params=best,
        scale={venue: scale},
        venue=venue,
        symbol=symbol,
        fitted_from_ms=int(bars.ts_ms[0]),
        fitted_until_ms=int(bars.ts_ms[-1]),
        bars=len(bars),
        objective=best_score,
        in_sample={side: {k: v for k, v in m[side].items() if k != "ratio"} for side in ("long", "short")},
    )
