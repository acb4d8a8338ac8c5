"""docs/operations.md stays honest: every metric, service setting and the backup
command it should describe are there."""

from __future__ import annotations

from prometheus_client.registry import CollectorRegistry

from tests.service_kit import ROOT, write_service_config
from warnd.config import GeneralConfig, load_config
from warnd.service.health import StoreCollector

DOC = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
SERVICE_KEYS = ("health_listen", "stale_after_intervals", "stop_timeout", "store_busy_timeout",
                "fetch_timeout", "fetch_deadline", "fetch_max_bytes", "fetch_retries",
                "fetch_max_redirects")


def test_every_service_setting_is_documented():
    for key in SERVICE_KEYS:
        assert key in GeneralConfig.model_fields, key
        assert f"`{key}`" in DOC, f"{key} is not in docs/operations.md"


def test_every_metric_is_documented(tmp_path):
    cfg = load_config(write_service_config(
        tmp_path / "config.toml",
        sources='\n[[sources]]\nname = "a"\nkind = "count_table"\nlocation = "a.csv"\n'
                'dimension = "use"\n'))
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(lambda: cfg, lambda: {"alive": True, "heartbeat_age_s": 0.1}))
    names = set()
    for fam in reg.collect():
        names.add(fam.name + ("_total" if fam.type == "counter" else ""))
    assert len(names) >= 15
    for n in sorted(names):
        assert f"`{n}`" in DOC, f"metric {n} is not in docs/operations.md"


def test_unit_file_and_commands_are_documented():
    assert "warnd backup" in DOC and "systemctl daemon-reload" in DOC
    assert "make fault-injection" in DOC and "make load" in DOC and "make check-unit" in DOC
