from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.base import SubstanceSpec

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FETCHED_AT = datetime(2026, 3, 30, 6, 0, tzinfo=UTC)

SUBSTANCES = (
    SubstanceSpec(
        id="heroin",
        label="Heroin",
        names=("heroin",),
        slang=("minus",),
    ),
    SubstanceSpec(
        id="kokain",
        label="Kokain (inkl. crack)",
        names=("kokain", "cocaine", "crack", "freebase"),
        slang=("cola", "snø", "snow", "coke", "blow", "nøkkel", "hvitt"),
        exclude=("coca-cola", "pepsi cola", "crackers"),
    ),
    SubstanceSpec(
        id="ketamin",
        label="Ketamin",
        names=("ketamin", "ketamine"),
        slang=("ket",),
    ),
    SubstanceSpec(
        id="xanor",
        label="Xanor (alprazolam)",
        names=("xanor", "xanax", "alprazolam", "ksalol"),
        slang=("stolpe", "stolper", "bars"),
    ),
)


@pytest.fixture
def substances() -> tuple[SubstanceSpec, ...]:
    return SUBSTANCES


def fixture_bytes(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()
