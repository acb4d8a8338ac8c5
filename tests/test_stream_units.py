"""Pieces of a right alert stream that a scenario shows only indirectly."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest

from feeds.base import SubstanceSpec
from feeds.matching import SubstanceMatcher
from tests.conftest import ROOT, write_config
from warnd.cli import main
from warnd.config import load_config
from warnd.errors import ConfigError

SCENARIO = ROOT / "examples" / "scenario" / "bergen.toml"


def test_slang_recall_on_the_scenario_headlines_with_no_decoy_matched():
    sc = tomllib.loads(SCENARIO.read_text(encoding="utf-8"))
    specs = [SubstanceSpec(id=k, label=v.get("label", k), names=tuple(v["names"]),
                           slang=tuple(v.get("slang", ())), exclude=tuple(v.get("exclude", ())),
                           context=tuple(v.get("context", ())))
             for k, v in sc["substances"].items()]
    m = SubstanceMatcher(specs)
    slang = [(sub, t) for sub, h in sc["headlines"].items() if sub != "decoys"
             for t in h["slang"]]
    hits = sum(m.match(t) == (sub,) for sub, t in slang)
    assert len(slang) >= 40 and hits / len(slang) >= 0.95, hits / len(slang)
    names = [(sub, t) for sub, h in sc["headlines"].items() if sub != "decoys"
             for t in h["names"]]
    assert all(m.match(t) == (sub,) for sub, t in names)
    decoys = sc["headlines"]["decoys"]
    assert len(decoys) >= 40 and [t for t in decoys if m.match(t)] == []


def test_common_trade_verbs_are_context_but_not_property_sales():
    m = SubstanceMatcher([SubstanceSpec(id="kokain", label="k", names=("kokain",),
                                        slang=("snø", "hvitt"))])
    assert m.match("Snø kjøpes på Snapchat") == ("kokain",)
    assert m.match("Kjørte påvirket av snø") == ("kokain",)
    assert m.match("Hvitt hus solgt for rekordpris") == ()
    assert m.match("20 cm snø i natt") == ()


def test_substance_context_words_count_only_for_that_substance():
    specs = [SubstanceSpec(id="kokain", label="k", names=("kokain",), slang=("snø",),
                           context=("sniff",)),
             SubstanceSpec(id="xanor", label="x", names=("xanor",), slang=("bars",))]
    m = SubstanceMatcher(specs)
    assert m.match("Snø sniffes på toalettene") == ("kokain",)
    assert m.match("Nye bars sniffes") == ()


@pytest.mark.parametrize("option", [
    'terms = { heroin = "herion" }',
    'substance_aliases = { Heroin = "herion" }',
])
def test_unknown_substance_ids_in_source_options_are_config_errors(tmp_path, option):
    kind = "google_trends" if option.startswith("terms") else "count_table"
    p = write_config(tmp_path, f'''
[[sources]]
name = "s"
kind = "{kind}"
location = "x/"
dimension = "interest"
{option}
''')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert any('"herion" is not a configured substance (did you mean "heroin"?)' in m
               for m in ei.value.messages), ei.value.messages


def test_a_table_with_a_wrong_column_is_unhealthy_with_the_reason(tmp_path, capsys):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "t.csv").write_text("period,substance,antall\n2026-01-05,heroin,3\n",
                                           encoding="utf-8")
    p = write_config(tmp_path, '''
[[sources]]
name = "lab"
kind = "count_table"
location = "lab/"
dimension = "use"
''')
    assert main(["--config", str(p), "run", "--once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(p), "status"]) == 1
    out = capsys.readouterr().out
    assert "unusable: lab: polled, but no usable data: no value column 'value'" in out
    assert "UNHEALTHY: lab" in out


def test_http_feed_with_its_content_type_has_no_false_problem(tmp_path):
    from feeds.rss import RssFeed

    feed = RssFeed(name="m", options=RssFeed.Options(), substances=[
        SubstanceSpec(id="ketamin", label="k", names=("ketamin",))], region="")
    raw = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
           b"<item><title>Ketamin</title><guid>g1</guid>"
           b"<pubDate>Mon, 05 Jan 2026 10:00:00 +0000</pubDate></item></channel></rss>")
    now = datetime(2026, 1, 6, tzinfo=UTC)
    for ctype in ("application/rss+xml; charset=utf-8", None):
        r = feed.parse(raw, location="http://127.0.0.1/rss", fetched_at=now,
                       content_type=ctype)
        assert r.problems == [] and len(r.items) == 1


def test_run_once_prints_warning_alerts(tmp_path, capsys):
    (tmp_path / "od").mkdir()
    now = datetime.now(UTC)
    (tmp_path / "od" / "varsler.html").write_text(
        '<html><body><article><h2><a href="/v/1">Ketamin med høy styrke</a></h2>'
        f'<time datetime="{now.isoformat()}">i dag</time><p>Start med lav dose.</p>'
        "</article></body></html>", encoding="utf-8")
    p = write_config(tmp_path, '''
[[sources]]
name = "overdosefare"
kind = "overdosefare"
location = "od/varsler.html"
dimension = "availability"
''')
    assert main(["--config", str(p), "run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "ALERT #1 [warning] Ny advarsel: ketamin — Ketamin med høy styrke" in out
    assert "no new alerts" not in out
    # the poll's line counts in words people write: one document, not "1 documents"
    assert "poll overdosefare: ok (1 document, 0 observations, 1 item, 0 problems)" in out
    assert load_config(p).substances


def test_a_revision_is_judged_at_once_and_a_withdrawn_alert_corrected(tmp_path):
    """Revised values are judged when they arrive: a revision revealing a doubling
    alerts without waiting for the next period; revising it away sends a correction."""
    from datetime import date, timedelta

    from feeds.base import Observation
    from tests.alerting_env import make_config, target
    from warnd.pipeline import Pipeline
    from warnd.store import Store

    cfg = make_config(tmp_path, target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org"))
    start = date(2025, 1, 6)
    n = 80

    def put(values):
        store = Store.in_dir(cfg.state_dir)
        try:
            store.ingest("lab", location="lab.csv", sha256=None, problems=(), items=(),
                         observations=[Observation(source="lab", substance="ketamin",
                                                   period=start + timedelta(weeks=i), value=v)
                                       for i, v in enumerate(values)])
        finally:
            store.close()

    base = [float(6 + (i % 3)) for i in range(n)]
    now = datetime(2026, 7, 20, 8, tzinfo=UTC)
    p = Pipeline(cfg, clock=lambda: now)
    put(base)
    assert p.detect() == []
    doubled = base[:-6] + [v * 2.5 for v in base[-6:]]
    put(doubled)  # the same periods, revised: no new period arrives
    (a,) = p.detect()
    assert (a["kind"], a["decision"]) == ("trend", "open")
    put(base)  # revised back: the alert rested on values that are gone
    (c,) = p.detect()
    assert c["decision"] == "correct" and c["title"].startswith("Rettelse")
    assert p.detect() == []
