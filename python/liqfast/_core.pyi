# Hand-written stubs for the Rust extension; checked against the built module by
# `python -m mypy.stubtest liqfast._core` (part of `make test`).
from typing import Literal, final

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
    "thread_count",
    "_reset_pool_after_fork",
    "_stream_read",
]

__version__: str
build_profile: Literal["release", "debug"]

_F64 = npt.NDArray[np.float64]
_FloatArg = float | npt.NDArray[np.float64]
_IntArg = int | npt.NDArray[np.int64]
_Totals = dict[str, tuple[float, float]]

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
        self, mmr: float | None = None, maint_amount: float | None = None, size_hint: float = 0.0
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
def thread_count() -> int: ...
def _reset_pool_after_fork() -> None: ...
def _stream_read(buffers: list[npt.NDArray[np.uint8]]) -> int: ...
