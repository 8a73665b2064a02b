from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data" / "articles" / "seeds"


@pytest.fixture
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def locked_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a file named locked.txt raises PermissionError (tests run as root: no chmod)."""
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
