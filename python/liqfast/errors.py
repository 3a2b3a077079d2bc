"""The liqfast exception hierarchy.

Every error liqfast raises on purpose is a :class:`LiqfastError`. Input problems are also
``ValueError`` (or ``TypeError`` for arrays of the wrong kind), unknown names are also
``LookupError``, so generic handlers keep working::

    LiqfastError
    ├── InvalidInputError (ValueError)          bad argument value or option
    │   ├── InvalidPositionError                a position's numbers (``.index`` = row or None)
    │   │   └── LeverageTooHighError            leverage above the tier maximum at entry
    │   ├── InvalidArrayError (TypeError)       wrong dtype, not 1-D, not contiguous, lengths differ
    │   ├── InvalidTierTableError               unusable tier table
    │   ├── InvalidBarsError                    bad bar series (``.index`` = bar or None)
    │   └── CheckpointError                     checkpoint bytes that cannot be restored
    ├── GridError (ValueError)                  bad price grid or too many cells
    ├── UnknownVenueError (LookupError)         venue id not known
    │   └── UnknownSymbolError                  symbol not known for that venue
    └── ExchangeError (ConnectionError)         an exchange could not be reached or refused

The Rust core raises these same classes (it imports them from here).
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ExchangeError",
    "GridError",
    "InvalidArrayError",
    "InvalidBarsError",
    "InvalidInputError",
    "InvalidPositionError",
    "InvalidTierTableError",
    "LeverageTooHighError",
    "LiqfastError",
    "UnknownSymbolError",
    "UnknownVenueError",
]


class LiqfastError(Exception):
    """Base class of every error liqfast raises on purpose."""


class InvalidInputError(LiqfastError, ValueError):
    """An argument has a value liqfast cannot use."""


class InvalidPositionError(InvalidInputError):
    """A position's numbers are invalid. ``index`` is the row in a batch call, else None."""

    index: int | None = None


class LeverageTooHighError(InvalidPositionError):
    """Leverage above the maximum of the tier at the position's entry notional."""


class InvalidArrayError(InvalidInputError, TypeError):
    """An array has the wrong dtype, dimensions, layout or length."""


class InvalidTierTableError(InvalidInputError):
    """A tier table is not usable (unordered, gaps, rates out of range, bad payload)."""


class InvalidBarsError(InvalidInputError):
    """A bar series is not usable. ``index`` is the offending bar, else None."""

    index: int | None = None


class CheckpointError(InvalidInputError):
    """Checkpoint bytes that cannot be restored (corrupt, truncated, other version)."""


class GridError(LiqfastError, ValueError):
    """A price grid that cannot be built or used (bounds, step, too many cells)."""


class UnknownVenueError(LiqfastError, LookupError):
    """A venue id liqfast does not know."""


class UnknownSymbolError(UnknownVenueError):
    """A symbol with no data for the given venue."""


class ExchangeError(LiqfastError, ConnectionError):
    """An exchange could not be reached, timed out, or answered with an HTTP error.
    ``status`` is the HTTP status when there was one; ``retry_after`` the seconds it asked
    to wait (429/418), else None."""

    status: int | None = None
    retry_after: float | None = None
