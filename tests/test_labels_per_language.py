"""Labels and units given per language: each reader gets the names in the language of
what they read (an English report from a Norwegian centre names "Ketamine")."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from feeds.base import Observation
from tests.alerting_env import finding, seed_series, target
from tests.conftest import write_config
from tests.servers import wait_for
from tests.test_config import errors_of
from warnd.alerting import decide, outbox
from warnd.config import load_config
from warnd.report.render import render_markdown
from warnd.report.tables import build_report
from warnd.store import Store

NOW = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)  # a Tuesday, working hours

SUBSTANCES = """
[substances.ketamin]
label = { no = "Ketamin", en = "Ketamine" }
names = ["ketamin", "ketamine"]

[substances.heroin]
label = { no = "Heroin" }
names = ["heroin"]
"""

LAB = """
[[sources]]
name = "lab"
label = { no = "Laboratoriet", en = "Drug-checking lab" }
unit = { no = "positive prøver per uke", en = "positive tests per week" }
kind = "count_table"
location = "lab/"
dimension = "use"
"""


def test_a_label_per_language_names_things_in_the_language_asked(tmp_path):
    cfg = load_config(write_config(tmp_path, LAB, substances=SUBSTANCES))
    assert cfg.substance_label("ketamin") == "Ketamin"  # general.language: Norwegian
    assert cfg.substance_label("ketamin", "en") == "Ketamine"
    # given in one language only, it names the substance in the other as well
    assert cfg.substance_label("heroin", "en") == "Heroin"
    assert (cfg.source_label("lab", "en"), cfg.source_unit("lab", "en")) == (
        "Drug-checking lab", "positive tests per week")
    assert (cfg.source_label("lab"), cfg.source_unit("lab")) == (
        "Laboratoriet", "positive prøver per uke")
    # the feeds match and name the substance as the config's language says it
    assert {s.id: s.label for s in cfg.substance_specs()} == {
        "ketamin": "Ketamin", "heroin": "Heroin"}


@pytest.mark.parametrize("label", ['{ de = "Ketamin" }', "{}", '{ en = "" }', "3",
                                   '{ en = ["Ketamine"] }'])
def test_a_label_neither_text_nor_text_per_language_is_refused_by_name(tmp_path, label):
    p = write_config(tmp_path, LAB.replace(
        'label = { no = "Laboratoriet", en = "Drug-checking lab" }', f"label = {label}"),
        substances=SUBSTANCES)
    [msg] = errors_of(p)
    assert msg.startswith("sources[0].label: give one text") and "no and en" in msg


def test_the_report_names_substances_sources_and_units_in_its_language(tmp_path):
    cfg = load_config(write_config(tmp_path, LAB, substances=SUBSTANCES))
    rng = np.random.default_rng(3)
    first = date(2024, 1, 1)
    obs = [Observation(source="lab", substance="ketamin", period=first + timedelta(weeks=i),
                       value=float(rng.poisson(20 if i >= 92 else 8))) for i in range(117)]
    store = Store.in_dir(cfg.state_dir)
    try:
        store.ingest("lab", location="lab.csv", sha256=None, observations=obs, items=(),
                     problems=())
        rep = build_report(store, cfg)
    finally:
        store.close()
    en, no = render_markdown(rep, "en"), render_markdown(rep, "no")
    assert "**Ketamine** – small increase in use" in en
    assert "Drug-checking lab: positive tests per week" in en
    assert not re.search(r"\bKetamin\b", en) and "Laboratoriet" not in en and "prøver" not in en
    assert "**Ketamin** – liten økning i bruk" in no
    assert "Laboratoriet: positive prøver per uke" in no and "Ketamine" not in no


def test_an_english_centres_alert_names_the_substance_and_source_in_english(
        tmp_path, smtp_server):
    p = write_config(tmp_path, LAB + target("mail", smtp_server.url()), substances=SUBSTANCES)
    p.write_text(p.read_text().replace('log_level = "DEBUG"', 'language = "en"'))
    cfg = load_config(p)
    assert cfg.general.language == "en"
    store = Store.in_dir(cfg.state_dir)
    try:
        seed_series(store, "lab")
        decide.enqueue_findings(cfg, store, "ketamin", [(finding("lab"), "open")], {}, now=NOW)
        outbox.dispatch_pending(cfg, store, now=NOW)
        wait_for(lambda: len(smtp_server.messages) == 1, what="the email")
    finally:
        store.close()
    msg = smtp_server.messages[0]
    assert msg["Subject"] == "Small increase: Ketamine — 1 source"
    text = msg.get_body(("plain",)).get_content()
    assert "Drug-checking lab: positive tests per week" in text and "Laborator" not in text
