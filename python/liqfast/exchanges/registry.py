"""Which connector serves which venue id, and building connectors from venue/symbol lists.

Some connectors cover two venue ids with one socket (OKX and KuCoin carry linear and
inverse swaps on the same connection); :func:`make_connectors` groups requests accordingly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import UnknownVenueError
from .base import Normalizer, native_symbol
from .connector import Connector, VenueUrls
from .fake import FakeVenue

__all__ = ["connector_class", "fake_protocols", "make_connectors", "normalizer_for", "VENUE_MODULES"]

#: venue id -> (module, connector class, connector kwargs)
VENUE_MODULES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "binance-usdm": ("binance", "BinanceUsdm", {}),
    "binance-coinm": ("binance", "BinanceCoinm", {}),
    "bybit-linear": ("bybit", "BybitLinear", {}),
    "bybit-inverse": ("bybit", "BybitInverse", {}),
    "okx-linear": ("okx", "Okx", {}),
    "okx-inverse": ("okx", "Okx", {}),
    "bitget-linear": ("bitget", "Bitget", {}),
    "gate-linear": ("gate", "GateLinear", {}),
    "gate-inverse": ("gate", "GateInverse", {}),
    "kucoin-linear": ("kucoin", "Kucoin", {}),
    "kucoin-inverse": ("kucoin", "Kucoin", {}),
    "hyperliquid": ("hyperliquid", "Hyperliquid", {}),
}

_FAKES = [
    ("binance", "Fake"), ("binance", "FakeCoinm"), ("bybit", "Fake"), ("bybit", "FakeInverse"), ("okx", "Fake"),
    ("bitget", "Fake"), ("gate", "Fake"), ("gate", "FakeInverse"), ("kucoin", "Fake"), ("hyperliquid", "Fake"),
]


def _mod(name: str) -> Any:
    return importlib.import_module(f"{__package__}.{name}")


def connector_class(venue: str) -> type[Connector]:
    try:
        mod, cls, _ = VENUE_MODULES[venue]
    except KeyError:
        raise UnknownVenueError(f"no connector for venue {venue!r}; known: {', '.join(VENUE_MODULES)}") from None
    klass: type[Connector] = getattr(_mod(mod), cls)
    return klass


def normalizer_for(family: str) -> Normalizer:
    """A fresh normaliser for a connector family (recordings name the family)."""
    for venue in VENUE_MODULES:
        cls = connector_class(venue)
        if cls.family == family:
            return cls.normalizer_cls()
    raise UnknownVenueError(f"no normaliser for {family!r}")


def fake_protocols() -> list[type[FakeVenue]]:
    return [getattr(_mod(m), c) for m, c in _FAKES]


def make_connectors(
    venues: Mapping[str, Sequence[str]] | Iterable[str],
    coins: Sequence[str] = ("BTC",),
    *,
    urls: Mapping[str, VenueUrls] | None = None,
    **kw: Any,
) -> list[Connector]:
    """Connectors for ``venues`` — either ``{venue: [native symbols]}`` or venue ids, in
    which case ``coins`` ("BTC", "ETH") are mapped to each venue's native symbol. Venue ids
    sharing a connector (okx-linear + okx-inverse) get one connector. ``urls`` maps a venue
    id (or connector family) to base URLs, e.g. from :meth:`FakeExchange.urls`."""
    if isinstance(venues, Mapping):
        wanted = {v: list(s) for v, s in venues.items()}
    else:
        wanted = {v: [native_symbol(v, c) for c in coins] for v in venues}
    groups: dict[type[Connector], list[str]] = {}
    group_venues: dict[type[Connector], list[str]] = {}
    for venue, syms in wanted.items():
        cls = connector_class(venue)
        groups.setdefault(cls, []).extend(syms)
        group_venues.setdefault(cls, []).append(venue)
    out: list[Connector] = []
    for cls, syms in groups.items():
        u = None
        if urls:
            u = urls.get(cls.family)
            if u is None:
                for v in group_venues[cls]:
                    if v in urls:
                        u = urls[v]
                        break
        out.append(cls(syms, urls=u, **kw))
    return out
