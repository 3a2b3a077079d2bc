"""Output paths of the subcommands, checked before any long work: a bad one used to end a
whole fit or backtest with a traceback (or, for a directory, a file written beside it)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInputError


def output_file(path: str, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` as a file that can be written: not a directory, in an existing, writable
    directory and, with ``suffixes``, ending in one of them; else InvalidInputError naming
    ``option``."""
    p = Path(path)
    if p.is_dir():
        raise InvalidInputError(f"{option} {path} is a directory: give a file name")
    if suffixes and p.suffix.lower() not in suffixes:
        raise InvalidInputError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    parent = p.parent
    if not parent.is_dir():
        raise InvalidInputError(f"{option} {path}: no directory {parent}")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InvalidInputError(f"{option} {path}: not writable")
    return p


def output_dir(path: str, option: str) -> Path:
    """``path`` as a writable directory, created if missing; else InvalidInputError."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InvalidInputError(f"{option} {path} is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidInputError(f"{option} {path}: cannot create it ({e.strerror})") from None
    if not os.access(p, os.W_OK):
        raise InvalidInputError(f"{option} {path}: not writable")
    return p
