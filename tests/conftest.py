from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

#: Shared reference material next to the repository (absent on a bare clone: tests skip).
SHARED = Path(os.environ.get("LIQFAST_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared reference folder not present")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the developer's real ~/.local/share/liqfast during tests."""
    monkeypatch.setenv("LIQFAST_DATA_DIR", str(tmp_path_factory.mktemp("liqfast-data")))
