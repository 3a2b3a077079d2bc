# Hand-written stubs for the Rust extension; checked against the built module by
# `python -m mypy.stubtest liqfast._core` (part of `make test`).
from collections.abc import Callable
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "build_profile",
    "MarginModel",
    "PriceGrid",
    "venues",
    "venue_formulas",
    "venue_kind",
    "formula_at",
    "auto_step",
    "liquidation_prices",
    "liquidation_map",
    "liquidation_heatmap",
    "hedge_liquidation_price",
    "max_leverages",
    "thread_count",
    "_reset_pool_after_fork",
    "_stream_read",
    "Model",
    "check_bars",
    "Simulator",
    "FrameDecoder",
    "SeenSet",
    "binance_agg_trades",
]

__version__: str
build_profile: Literal["release", "debug"]

_F64 = npt.NDArray[np.float64]
_FloatArg = float | npt.NDArray[np.float64]
_IntArg = int | npt.NDArray[np.int64]
# per-side (long, short) pairs, plus "mean_entry": the qty-weighted mean entry (a float)
_Totals = dict[str, Any]

@final
class MarginModel:
    def __new__(
        cls,
        venue: str,
        formula: str,
        contract_size: float,
        fee_rate: float,
        tier_unit: str,
        tiers: list[tuple[float, float, float, float, float]],
    ) -> MarginModel: ...
    def with_overrides(
        self, mmr: float | None = None, maint_amount: float | None = None, size_hint: float | None = None
    ) -> MarginModel: ...
    @property
    def venue(self) -> str: ...
    @property
    def formula(self) -> str: ...
    @property
    def kind(self) -> Literal["linear", "inverse"]: ...
    @property
    def contract_size(self) -> float: ...
    @property
    def fee_rate(self) -> float: ...
    @property
    def tier_unit(self) -> Literal["quote", "base", "contracts"]: ...
    @property
    def overridden(self) -> bool: ...
    @property
    def tiers(self) -> list[tuple[float, float, float, float, float]]: ...
    def liquidation_price(
        self, side: str | int | float, entry: float, qty: float, *, leverage: float | None = None, margin: float | None = None
    ) -> float: ...
    def tier_at(self, qty: float, price: float) -> int: ...
    def usd_notional(self, qty: float, price: float) -> float: ...

@final
class PriceGrid:
    def __new__(cls, lo: float, hi: float, step: float) -> PriceGrid: ...
    @property
    def lo(self) -> float: ...
    @property
    def hi(self) -> float: ...
    @property
    def step(self) -> float: ...
    def __len__(self) -> int: ...
    def edges(self) -> _F64: ...
    def centers(self) -> _F64: ...
    def locate(self, price: float) -> int: ...
    def __getnewargs__(self) -> tuple[float, float, float]: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

def venues() -> list[str]: ...
def venue_formulas(venue: str) -> list[tuple[str, int | None, str]]: ...
def formula_at(venue: str, t_ms: int) -> str: ...
def venue_kind(venue: str) -> Literal["linear", "inverse"]: ...
def auto_step(price: float, tick: float = 0.0) -> float: ...
def liquidation_prices(
    models: list[MarginModel],
    since: list[int | None],
    entry: _F64,
    qty: _F64,
    side: npt.NDArray[np.int8],
    margin: _FloatArg,
    margin_kind: str,
    open_time: _IntArg | None = None,
) -> _F64: ...
def liquidation_map(
    models: list[MarginModel],
    since: list[int | None],
    entry: _F64,
    qty: _F64,
    side: npt.NDArray[np.int8],
    margin: _FloatArg,
    margin_kind: str,
    grid: PriceGrid,
    open_time: _IntArg | None = None,
) -> tuple[_F64, _F64, _Totals]: ...
def liquidation_heatmap(
    models: list[MarginModel],
    since: list[int | None],
    entry: _F64,
    qty: _F64,
    side: npt.NDArray[np.int8],
    margin: _FloatArg,
    margin_kind: str,
    time_index: _IntArg,
    n_times: int,
    grid: PriceGrid,
    open_time: _IntArg | None = None,
) -> tuple[_F64, _F64, _Totals]: ...
def hedge_liquidation_price(
    model: MarginModel,
    wallet: float,
    long_entry: float | None = None,
    long_qty: float | None = None,
    short_entry: float | None = None,
    short_qty: float | None = None,
) -> float: ...
def max_leverages(model: MarginModel, entry: _F64, qty: _F64) -> _F64: ...
def thread_count() -> int: ...
def _reset_pool_after_fork() -> None: ...
def _stream_read(buffers: list[npt.NDArray[np.uint8]]) -> int: ...

_BarColumns = tuple[
    npt.NDArray[np.int64], _F64, _F64, _F64, _F64, _F64, _F64
]

@final
class Model:
    def __new__(cls, params: dict[str, object]) -> Model: ...
    def add_venue(self, models: list[MarginModel], since: list[int | None], bar_ms: int) -> int: ...
    def venue_count(self) -> int: ...
    def leverage_points(self) -> list[tuple[float, float]]: ...
    def step(
        self,
        venue: int,
        ts_ms: int,
        open: float,
        high: float,
        low: float,
        close: float,
        oi_usd: float,
        taker_net_base: float | None = None,
        profile: list[tuple[float, float]] | None = None,
    ) -> tuple[float, float, bool, bool]: ...
    def replay(
        self,
        bars: list[_BarColumns],
        scale: list[float],
        grid: PriceGrid | None = None,
        resolution_ms: int = 3600000,
        lev_lo: float = 0.0,
        lev_hi: float = ...,
        profiles: list[tuple[npt.NDArray[np.generic], ...] | None] | None = None,
    ) -> dict[str, npt.NDArray[np.generic]]: ...
    def snapshot(
        self,
        grid: PriceGrid,
        scale: list[float],
        venue: int | None = None,
        side: str | None = None,
        bands: list[tuple[float, float]] | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def evidence(self, venue: int, side: str, price: float, usd: float, tolerance: float | None = None) -> float: ...
    def side_usd(self, venue: int) -> tuple[float, float]: ...
    def cohort_count(self, venue: int) -> int: ...
    def cohorts(self, venue: int) -> dict[str, npt.NDArray[np.generic]]: ...
    def rejected(self, venue: int) -> int: ...
    def checkpoint(self) -> bytes: ...
    @staticmethod
    def restore(data: bytes) -> Model: ...

def check_bars(
    ts_ms: npt.NDArray[np.int64],
    open: _F64,
    high: _F64,
    low: _F64,
    close: _F64,
    oi_close_usd: _F64,
    taker_net_base: _F64,
) -> None: ...

@final
class Simulator:
    def __new__(cls, config: dict[str, object], models: list[MarginModel], weights: list[float]) -> Simulator: ...
    @property
    def price(self) -> float: ...
    def step(self) -> dict[str, Any]: ...
    def run(self, n_bars: int, steps_per_bar: int, grid: PriceGrid | None = None, every: int = 1) -> dict[str, Any]: ...
    def true_map(self, grid: PriceGrid, venue: int | None = None) -> tuple[_F64, _F64]: ...

# -- fast frame decoder of the hot WebSocket channels (rust/src/py_decode.rs) -------------------

@final
class FrameDecoder:
    def __new__(
        cls,
        owner: object,
        venue: str,
        fallback: Callable[[Any, bytes | str, int, Any, list[Any]], bool] | None = None,
    ) -> FrameDecoder: ...
    @property
    def venue(self) -> str: ...
    @property
    def handled(self) -> int: ...
    @property
    def messages(self) -> int: ...
    @property
    def events(self) -> int: ...
    @property
    def declined(self) -> int: ...
    @property
    def panics(self) -> int: ...
    @property
    def last_reject(self) -> str: ...
    def decode(self, data: bytes | str, recv_ms: int, out: list[Any]) -> int | None: ...
    def on_message(self, data: bytes | str, recv_ms: int, ctx: Any, out: list[Any]) -> bool: ...
    def feed_many(self, frames: list[bytes], recv_ms: int | list[int], ctx: Any, out: list[Any]) -> int: ...

@final
class SeenSet:
    def __new__(cls, capacity: int) -> SeenSet: ...
    def check_add(
        self, inst_id: str, ts: int, side: str, pos_side: str, sz: float, bk_px: float
    ) -> bool: ...
    @property
    def capacity(self) -> int: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[tuple[str, int, str, str, float, float]]: ...

def binance_agg_trades(
    block: bytes, header_pending: bool, venue: str, symbol: str, inverse: bool, contract_size: float
) -> tuple[list[tuple[int, Any]], bool] | None: ...
