"""Report charts are drawn once and reused while their data is unchanged."""

from __future__ import annotations

from datetime import date

from feeds.base import Observation
from tests.test_store_migration import ROOT, _unpack
from warnd.config import load_config
from warnd.report.charts import ChartCache
from warnd.report.render import render_html
from warnd.report.tables import build_report
from warnd.store import Store


def _html(store, cfg, cache) -> str:
    rep = build_report(store, cfg)
    return render_html(rep, "no", params=cfg.detection_params(""), chart_cache=cache)


def test_charts_are_drawn_once_and_redrawn_only_when_their_data_changes(tmp_path, monkeypatch):
    db = _unpack(tmp_path / "state")
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "state"))
    cfg = load_config(ROOT / "config.toml")
    store = Store(db)
    try:
        first = ChartCache(tmp_path / "charts")
        html1 = _html(store, cfg, first)
        n_charts = first.drawn
        assert n_charts >= 4 and first.hits == 0
        assert len(list((tmp_path / "charts").glob("*.svg"))) == n_charts

        again = ChartCache(tmp_path / "charts")
        assert _html(store, cfg, again) == html1
        assert (again.drawn, again.hits) == (0, n_charts)

        # a revised value of one heroin series: only heroin's charts are drawn again
        key = next(k for k in store.series_keys("heroin") if k[3] == "count")
        last = store.q("SELECT period, value FROM observations WHERE source=? AND substance=? "
                       "AND region=? AND metric=? ORDER BY period DESC LIMIT 1", key)[0]
        store.ingest(key[0], location="fix", sha256="fix", items=(), problems=(),
                     observations=[Observation(
                         source=key[0], substance="heroin", region=key[2], metric=key[3],
                         period=date.fromisoformat(last["period"]),
                         value=last["value"] + 50)])
        changed = ChartCache(tmp_path / "charts")
        assert _html(store, cfg, changed) != html1
        assert 1 <= changed.drawn <= 2 and changed.hits == n_charts - changed.drawn
    finally:
        store.close()


def test_an_unwritable_cache_only_means_drawing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = ChartCache(blocker / "charts")
    assert cache.chart("t", [1], lambda: b"svg") == b"svg"
    assert cache.chart("t", [1], lambda: b"svg") == b"svg"
    assert (cache.drawn, cache.hits) == (2, 0)
