"""The half-year report's list of the alerts warnd raised and the warnings that named a
substance, from a store filled through the real pipeline: the notices page read from a
file, a real SMTP server on localhost, the clock moved on from poll to poll."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from feeds.base import Observation
from tests.alerting_env import notice_config, target
from tests.test_stream_notices import _inbox, _page, _round
from warnd.report.render import md_text, render_html, render_markdown
from warnd.report.tables import build_report
from warnd.store import Store

# 00:30 in Oslo on 1 April 2026 (summer time): still 31 March in UTC
PUBLISHED = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
HEROIN = ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
          PUBLISHED.astimezone(ZoneInfo("Europe/Oslo")))


def _config(tmp_path, smtp):
    return notice_config(tmp_path, target("ops", smtp.url("ops@example.org")),
                         '\n[alerting]\ndefault_targets = ["ops"]\n',
                         heroin='{ no = "Heroin", en = "Heroin (diacetylmorphine)" }')


def _reports(cfg):
    """The April–September and October–March reports, heroin given a year and a half of
    weekly figures so it has its table."""
    store = Store.in_dir(cfg.state_dir)
    try:
        weeks = [date(2025, 4, 7) + timedelta(weeks=i) for i in range(78)]
        store.ingest("overdosefare", location="t", sha256=None, items=(), problems=(),
                     observations=[Observation(source="overdosefare", substance="heroin",
                                               period=d, value=5.0) for d in weeks])
        return (build_report(store, cfg, start=date(2026, 4, 1)),
                build_report(store, cfg, start=date(2026, 3, 1)))
    finally:
        store.close()


def test_a_warning_told_just_after_midnight_on_a_half_years_first_day_is_in_that_half_year(
        tmp_path, smtp_server):
    """The notice published at 00:30 on 1 April and told ten minutes later ("published
    2026-04-01" in its message) is listed, alert and warning, in the April–September
    report, dated 1 April, and not in the October–March report (before, both were
    dated 31 March by their UTC day and listed in the half-year before)."""
    cfg = _config(tmp_path, smtp_server)
    _page(tmp_path, HEROIN)
    _round(cfg, PUBLISHED + timedelta(minutes=10))
    (msg,) = smtp_server.messages
    assert "(2026-04-01)" in str(msg), str(msg)
    spring, autumn = _reports(cfg)
    assert spring.current == (date(2026, 4, 1), date(2026, 9, 30))
    assert autumn.current == (date(2025, 10, 1), date(2026, 3, 31))
    (heroin,) = spring.substances
    assert [a["detected_at"] for a in heroin.alerts] == ["2026-04-01"]
    assert [str(n["published_at"])[:10] for n in heroin.notices] == ["2026-04-01"]
    md = render_markdown(spring, "no")
    assert "- 2026-04-01 Heroin med høy styrke" in md, md
    assert "2026-03-31" not in md
    (heroin,) = autumn.substances
    assert (heroin.alerts, heroin.notices) == ((), ())


def test_the_alerts_are_listed_in_the_reports_language(tmp_path, smtp_server):
    """The report in English lists the warning warnd told in Norwegian ("Ny advarsel:
    Heroin — …") as it says it in English, with the substance's English label, as the
    rest of its line ("[warning]") and page; the Norwegian report as it was sent (before,
    the English report said "[warning] Ny advarsel: Heroin — …")."""
    cfg = _config(tmp_path, smtp_server)
    _page(tmp_path, HEROIN)
    _round(cfg, PUBLISHED + timedelta(hours=10))
    told = "Ny advarsel: Heroin — Heroin med høy styrke"
    assert _inbox(smtp_server) == {"ops@example.org": [told]}
    spring, _ = _reports(cfg)
    said = "New warning: Heroin (diacetylmorphine) — Heroin med høy styrke"
    for render, text in ((render_markdown, md_text), (render_html, str)):
        en, no = render(spring, "en"), render(spring, "no")
        assert text(said) in en and "Ny advarsel" not in en, render
        assert text(told) in no and "New warning" not in no, render


def test_an_alert_a_silence_kept_from_everyone_is_listed_as_sent_to_no_one(
        tmp_path, smtp_server):
    """Heroin silenced for two weeks after its first warning was told, the second warning
    is recorded and sent to nobody. The report lists both, the second marked "sent to
    no one" ("sendt til ingen"), as the digest leaves it out of what was sent (before,
    the report listed it as any other, an alert its readers would take as told)."""
    from warnd.alerting import actions

    cfg = _config(tmp_path, smtp_server)
    first = ("v/1", "Heroin med høy styrke", "Heroin med uvanlig høy styrke.",
             datetime(2026, 4, 7, 9, tzinfo=UTC))
    second = ("v/2", "Heroin blandet med nitazen", "Heroin med nitazen i Oslo.",
              datetime(2026, 4, 9, 9, tzinfo=UTC))
    _page(tmp_path, first)
    _round(cfg, datetime(2026, 4, 7, 10, tzinfo=UTC))
    store = Store.in_dir(cfg.state_dir)
    try:
        actions.add_silence(store, substance="heroin", duration=timedelta(days=14),
                            reason="kjent", who="kari", via="cli",
                            now=datetime(2026, 4, 8, 10, tzinfo=UTC))
    finally:
        store.close()
    _page(tmp_path, first, second)
    _round(cfg, datetime(2026, 4, 9, 10, tzinfo=UTC))
    assert _inbox(smtp_server) == {"ops@example.org": [
        "Ny advarsel: Heroin — Heroin med høy styrke"]}
    spring, _ = _reports(cfg)
    (heroin,) = spring.substances
    assert [a["sent"] for a in heroin.alerts] == [True, False]
    md, en = render_markdown(spring, "no"), render_html(spring, "en")
    assert [line.endswith("\\(sendt til ingen\\)") for line in md.splitlines()
            if line.startswith("- #")] == [False, True], md
    assert en.count("(sent to no one)") == 1
    assert "nitazen (sent to no one)" in en


def _rise_through_the_autumn(tmp_path, capsys, weeks: range, reports: dict[int, list[str]],
                             *, send_resolved: bool = True
                             ) -> tuple[list[tuple[int, str, str]], dict[tuple[int, str], str]]:
    """Lab and customs show ketamine rising from July 2025 to October (weeks 110–121),
    then back to the usual level; the pipeline reads them week by week, and in the weeks
    of ``reports`` runs ``warnd report`` with those arguments. The trend alerts as
    ``(id, decision, day)`` and each report's output by ``(week, arguments)``. Ends are
    told (``send_resolved``) unless ``send_resolved`` is False."""
    from tests.alerting_env import make_config
    from tests.test_stream_revisions import MAIL, _put_each, _rising, _usual, _week_end
    from warnd.cli import main
    from warnd.pipeline import Pipeline

    cfg = make_config(tmp_path, MAIL, "\n[alerting]\nsend_resolved = true\n"
                      if send_resolved else "")
    values = _rising(_usual(weeks.stop), {"lab": 110, "customs": 112}, until=122)
    told, out = [], {}
    capsys.readouterr()
    for w in weeks:
        _put_each(cfg, values, w + 1)
        told += [(a["id"], a["decision"], a["data"]["detected_at"]) for a in
                 Pipeline(cfg, clock=lambda w=w: _week_end(w)).detect() if a["kind"] == "trend"]
        for args in reports.get(w, []):
            assert main(["--config", str(tmp_path / "config.toml"), "report",
                         *args.split()]) == 0, args
            out[w, args] = capsys.readouterr().out
    return told, out


def _listed(md: str) -> dict[int, str]:
    """The alerts a Markdown report lists, by id."""
    lines = [line for line in md.splitlines() if line.startswith("- #")]
    ids = [int(line.split()[1][1:]) for line in lines]
    assert len(ids) == len(set(ids)), lines  # none twice
    return dict(zip(ids, lines, strict=True))


def test_a_rise_from_the_half_year_before_is_listed_as_going_on_until_it_ends(
        tmp_path, capsys):
    """Ketamine's rise is told in August 2025 and goes on into November. The
    October–March report made in November lists its opening, though told in the
    half-year before, as going on from it ("pågår fra forrige periode" / "ongoing since
    the previous period"), once, and not its escalations told before October; made in
    February, once the rise has ended, it says the day it ended, and lists the end as
    any alert of the period. The April–September report lists the opening as its own.
    Before, the October–March report listed no alert of the rise until its end."""
    autumn = ["--format md --lang no --from 2025-10-01", "--format md --lang en --from "
              "2025-10-01", "--format html --lang en --from 2025-10-01",
              "--format html --lang no --from 2025-10-01"]
    spring = "--format md --lang no --from 2025-04-01"
    told, out = _rise_through_the_autumn(tmp_path, capsys, range(106, 143),
                                         {124: [*autumn, spring], 142: autumn[:3]})
    (opened, _, day), *later = told
    assert day < "2025-10-01" and [d for _, d, _ in later][-1] == "resolve", told
    before = {i for i, d, when in later if when < "2025-10-01"}
    ended = next(when for _, d, when in later if d == "resolve")
    assert "2025-10-26" < ended < "2026-02-22", told
    for w, end in ((124, ""), (142, ended)):
        for args, going, end_said in ((autumn[0], "pågår fra forrige periode", "avsluttet"),
                                      (autumn[1], "ongoing since the previous period",
                                       "ended")):
            listed = _listed(out[w, args])
            assert f"({going})" in listed[opened].replace("\\", ""), listed
            assert (f"({end_said} {end})" in listed[opened].replace("\\", "")) == bool(end)
            assert not set(listed) & before, (listed, before)
        html = out[w, autumn[2]]
        assert html.count("(ongoing since the previous period)") == 1, html
        assert (f"(ended {end})" in html) == bool(end)
    assert not any("pågår" in line or "avsluttet" in line
                   for line in _listed(out[124, spring]).values())
    assert opened in _listed(out[124, spring])


def test_a_half_year_not_over_says_how_far_its_data_run(tmp_path, capsys):
    """The October–March report made in the week of 20 October 2025, from three weeks of
    the half-year, says in its header, over its main findings and over each substance's
    verdicts that the period is not over and its data run to Sunday 26 October, in each
    language and format; the CSV gives the day in ``data_to``. The April–September
    report, and the October–March one made once March has data, say nothing of it.
    Before, a half-year of three weeks was scored as if it were whole, without a word."""
    import csv
    import io

    autumn = "--lang {} --from 2025-10-01 --format {}"
    made = [autumn.format(lang, fmt) for lang in ("no", "en") for fmt in ("md", "html")]
    _, out = _rise_through_the_autumn(tmp_path, capsys, range(120, 148), {
        124: [*made, autumn.format("no", "csv"), "--format md --from 2025-04-01"],
        147: made})
    for args in made:
        said = ("Perioden er ikke over: data til og med 2025-10-26" if "no" in args.split()
                else "The period is not over: data up to 2025-10-26")
        text = out[124, args]
        assert text.count(said) == 3, (args, text)  # header, findings, the one table
        heading = "Aggregert differanse" if "no" in args.split() else "Aggregated difference"
        assert said in text.split(heading, 1)[1][:300], text  # where the verdicts are
        assert "ikke over" not in out[147, args] and "not over" not in out[147, args]
    assert "ikke over" not in out[124, "--format md --from 2025-04-01"]
    rows = list(csv.DictReader(io.StringIO(out[124, autumn.format("no", "csv")])))
    assert {r["data_to"] for r in rows} == {"2025-10-26"}, rows


def test_a_rise_from_the_half_year_before_whose_end_was_not_told_ends_when_it_ended(
        tmp_path, capsys):
    """As above, with ends not sent (``send_resolved`` off): no alert tells the end, yet
    the October–March report made in February lists the rise as going on from the
    half-year before and ended on the day warnd found it over, not as going on still."""
    args = "--format md --lang en --from 2025-10-01"
    told, out = _rise_through_the_autumn(tmp_path, capsys, range(106, 143), {142: [args]},
                                         send_resolved=False)
    assert [d for _, d, _ in told] == ["open", "escalate"], told
    line = _listed(out[142, args])[told[0][0]].replace("\\", "")
    assert "(ongoing since the previous period) (ended 2025-1" in line, line
