"""Docs stay true: every config key and source kind is documented, README names the commands."""

from __future__ import annotations

import re

import pytest

from feeds.registry import FEEDS
from warnd import config as C
from warnd.cli import build_parser


def _doc(root, name: str) -> str:
    return (root / "docs" / name).read_text(encoding="utf-8")


MODELS = [
    (C.GeneralConfig, "general"),
    (C.SubstanceConfig, "substances"),
    (C.SourceConfig, "sources"),
    (C.TargetConfig, "targets"),
    (C.RouteConfig, "routes"),
    (C.AlertingConfig, "alerting"),
    (C.WebConfig, "web"),
]


@pytest.mark.parametrize(("model", "section"), MODELS, ids=[s for _, s in MODELS])
def test_every_config_key_is_documented(root, model, section):
    doc = _doc(root, "configuration.md")
    missing = [k for k in model.model_fields if f"`{k}`" not in doc]
    assert not missing, f"[{section}] keys missing from docs/configuration.md: {missing}"


def test_every_source_kind_and_option_is_documented(root):
    doc = _doc(root, "sources.md")
    for kind, cls in FEEDS.items():
        assert f"`{kind}`" in doc, kind
        for key in cls.Options.model_fields:
            assert re.search(rf"`{key}(`|\.)", doc), f"{kind}.{key} missing from docs/sources.md"


def test_readme_shows_setup_and_every_command(root):
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert re.search(rf"warnd {re.escape(name)}\b", readme), f"`warnd {name}` not in README"


def test_ci_runs_the_readme_test_command(root):
    assert "make test" in (root / ".ci" / "run").read_text()


def test_the_architecture_and_the_code_map_name_only_files_that_exist(root):
    """Every file the architecture page and the code map send a newcomer to is there,
    and every module of the packages is on one of them."""
    text = _doc(root, "architecture.md") + _doc(root, "code-map.md")
    named = set(re.findall(r"`((?:warnd|feeds|detectors|tests|scripts|benchmarks|systemd)"
                           r"/[\w/.-]+\.(?:py|service|toml|j2))`", text))
    assert len(named) > 40
    assert not sorted(p for p in named if not (root / p).exists())
    modules = [p.relative_to(root).as_posix() for d in ("warnd", "feeds", "detectors")
               for p in (root / d).rglob("*.py") if p.name != "__init__.py"]
    missing = sorted(m for m in modules if f"`{m}`" not in text
                     and f"`{m.rsplit('/', 1)[-1]}`" not in text)
    assert not missing, f"modules on neither page: {missing}"


def test_the_docs_name_only_test_files_that_exist(root):
    """A test file the docs and the README point to as evidence is there (a renamed or
    merged test file leaves no dead pointer)."""
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    named = {(d.name, p) for d in docs
             for p in re.findall(r"tests/[\w/]+\.py", d.read_text(encoding="utf-8"))}
    assert len(named) > 20
    assert not sorted((d, p) for d, p in named if not (root / p).exists())
