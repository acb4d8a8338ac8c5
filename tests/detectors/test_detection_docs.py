from pathlib import Path

from detectors.params import DetectionParams

DOC = Path(__file__).resolve().parents[2] / "docs" / "detection.md"


def test_every_parameter_is_documented():
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in DetectionParams.model_fields if f"`{name}`" not in text]
    assert missing == []


def test_backtest_fields_are_documented():
    text = DOC.read_text(encoding="utf-8")
    for field in (
        "fired_at",
        "kind",
        "direction",
        "onset",
        "decision",
        "category_words",
        "change_points",
        "segments",
    ):
        assert f"`{field}`" in text, field
