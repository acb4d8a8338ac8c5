"""Every kind and every option key is documented in docs/sources.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from feeds.registry import FEEDS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "sources.md").read_text(encoding="utf-8")


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += keys(sub, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


@pytest.mark.parametrize("kind", sorted(FEEDS))
def test_kind_and_options_documented(kind: str) -> None:
    section = DOC.split(f"\n## {kind}\n", 1)
    assert len(section) == 2, f"no section for {kind}"
    body = section[1].split("\n## ", 1)[0]
    for key in keys(FEEDS[kind].Options):
        assert f"`{key}`" in body, f"{kind}: option {key} not documented"
