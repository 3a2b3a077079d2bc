"""Typed errors of the ingestion layer, subclasses of :mod:`liqfast.errors` so a caller can
catch everything liqfast raises with ``LiqfastError`` and still tell a rate limit from an
outage::

    LiqfastError
    └── FeedError                                   live data problems
        ├── FeedConnectionError (ConnectionError)   cannot reach the venue
        │   └── NetworkUnavailableError             no network at all (DNS/route): say so, don't hang
        ├── RateLimitedError                        429/418/403-too-frequent; ``retry_after`` seconds
        ├── ExchangeError                           the venue answered with an error
        │   └── SubscriptionError                   a subscription was refused
        ├── SlowConsumerError                       a hub subscriber fell too far behind (policy "disconnect")
        └── BackfillError                           a history download failed
    InvalidInputError
    └── RecordingError                              a recording file that cannot be read
"""

from __future__ import annotations

from ..errors import InvalidInputError, LiqfastError

__all__ = [
    "BackfillError",
    "ExchangeError",
    "FeedConnectionError",
    "FeedError",
    "NetworkUnavailableError",
    "RateLimitedError",
    "RecordingError",
    "SlowConsumerError",
    "SubscriptionError",
]


class FeedError(LiqfastError):
    """A problem with live exchange data."""


class FeedConnectionError(FeedError, ConnectionError):
    """A venue could not be reached (refused, reset, timed out, TLS failure)."""


class NetworkUnavailableError(FeedConnectionError):
    """No venue host can even be resolved or reached: the machine has no usable network."""


class RateLimitedError(FeedError):
    """The venue rate-limited us. ``retry_after`` is how long to stay quiet, in seconds."""

    def __init__(self, message: str, *, retry_after: float, status: int = 429) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class ExchangeError(FeedError):
    """The venue answered, but with an error (HTTP status or error payload)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SubscriptionError(ExchangeError):
    """The venue refused a subscription (unknown symbol, too many topics...)."""


class SlowConsumerError(FeedError):
    """A hub subscription with overflow policy "disconnect" overflowed and was closed."""


class BackfillError(FeedError):
    """A history file or page could not be downloaded or parsed."""


class RecordingError(InvalidInputError):
    """A recording file that is not a liqfast recording, or is corrupt."""
