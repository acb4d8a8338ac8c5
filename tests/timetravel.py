"""Time-travel scenarios: the real pipeline driven through a series of dates.

A scenario is a TOML file (``tests/scenarios/*.toml``, ``examples/scenario/*.toml``)
that declares substances, how strongly each source sees each substance, when rises
begin, and the events of the period: outages, revisions, warning notices. For every
run date the :class:`World` renders what each source would have shown on that day —
an RSS feed and an overdosefare page served over a loopback HTTP server, Google Trends
exports and weekly tables as files in a folder — and :func:`run` moves a clock through
the dates, calling the real :class:`warnd.pipeline.Pipeline` (poll → store → detect
→ alerting → dispatch to a loopback SMTP server). The result is the message stream a
recipient would have received, with the date each message was sent.

Format (every key; dates are ISO, levels are expected counts per period)::

    [scenario]
    title = "..."
    history_from = "2023-01-02"   # first period any source has
    install = "2025-02-03"         # first run (a fresh store)
    until = "2025-12-29"           # last run
    every = 14                     # days between runs
    run_at = "07:00"               # UTC time of each run
    seed = 7

    [config]                       # merged into the generated config.toml
    general = { backfill_current_periods = 4 }

    [substances.<id>]              # copied into config.toml as-is

    [[rises]]                      # a real rise: levels × factor, reached over ramp_weeks
    substance = "kokain"; onset = "2025-05-05"; factor = 3.0; ramp_weeks = 6

    [[sources]]
    name = "media"; kind = "rss"; dimension = "interest"
    window_weeks = 26               # the feed shows its last 26 weeks
    weekly = { kokain = 3.0 }       # articles per week naming the substance
    decoys_per_week = 4             # articles that must not match anything

    [[sources]]
    name = "trends"; kind = "google_trends"; dimension = "interest"
    export_every_weeks = 4; export_weeks = 104
    weekly = { kokain = 30.0 }      # search level before any rise (scaled per export)

    [[sources]]
    name = "lab"; kind = "count_table"; period = "month"; dimension = "use"
    lag_days = 12; tests = 400; served = "http"
    monthly = { kokain = 20.0 }

    [[sources]]
    name = "amk"; kind = "count_table"; period = "week"; dimension = "use"
    lag_days = 3; served = "files"
    weekly = { kokain = 6.0 }

    [[sources]]
    name = "overdosefare"; kind = "overdosefare"; dimension = "availability"

    [[outages]]                     # http: 503; files: the table stops advancing
    source = "amk"; from = "2025-08-04"; until = "2025-09-15"

    [[revisions]]                   # published × factor, corrected at a later date
    source = "lab"; substance = "xanor"; period = "2025-03-01"; factor = 3.0
    periods = 1; corrected = "2025-06-16"

    [[notices]]
    published = "2025-07-10T09:00:00+02:00"; title = "..."; text = "..."

    [headlines.<id>]                # titles; {n} is replaced by a running number
    names = ["..."]; slang = ["..."]
    [headlines]
    decoys = ["..."]

    [expect]
    rising = ["kokain"]; stable = ["heroin"]; first_message_within_weeks = 16

Run one from the repository root to print its message stream::

    python -m tests.timetravel examples/scenario/bergen.toml
"""

from __future__ import annotations

import json
import threading
import tomllib
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


# -- the declarative scenario ------------------------------------------------------
@dataclass
class Scenario:
    path: Path
    raw: dict[str, Any]
    title: str
    history_from: date
    install: date
    until: date
    every: int
    run_at: time
    seed: int
    substances: dict[str, dict[str, Any]]
    rises: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    outages: list[dict[str, Any]]
    revisions: list[dict[str, Any]]
    notices: list[dict[str, Any]]
    headlines: dict[str, Any]
    expect: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str) -> Scenario:
        path = Path(path)
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        sc = raw["scenario"]
        return cls(
            path=path, raw=raw, title=sc.get("title", path.stem),
            history_from=_d(sc["history_from"]), install=_d(sc["install"]),
            until=_d(sc["until"]), every=int(sc.get("every", 14)),
            run_at=time.fromisoformat(sc.get("run_at", "07:00")), seed=int(sc.get("seed", 1)),
            substances=raw.get("substances", {}), rises=raw.get("rises", []),
            sources=raw.get("sources", []), outages=raw.get("outages", []),
            revisions=raw.get("revisions", []), notices=raw.get("notices", []),
            headlines=raw.get("headlines", {}), expect=raw.get("expect", {}),
            config=raw.get("config", {}),
        )

    def run_dates(self, install: date | None = None, until: date | None = None) -> list[date]:
        d, end = install or self.install, until or self.until
        out = []
        while d <= end:
            out.append(d)
            d += timedelta(days=self.every)
        return out

    def onset(self, substance: str) -> date | None:
        rs = [_d(r["onset"]) for r in self.rises if r["substance"] == substance]
        return min(rs) if rs else None


def _d(x: Any) -> date:
    return x if isinstance(x, date) else date.fromisoformat(str(x))


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


# -- what the world looks like on a date ----------------------------------------------
class World:
    """Renders every source's content as of a date (deterministic per seed)."""

    def __init__(self, scenario: Scenario, install: date) -> None:
        self.s = scenario
        self.install = install
        self._frozen: dict[str, date] = {}

    # levels
    def multiplier(self, substance: str, day: date) -> float:
        m = 1.0
        for r in self.s.rises:
            if r["substance"] != substance:
                continue
            onset, factor = _d(r["onset"]), float(r["factor"])
            ramp = max(float(r.get("ramp_weeks", 0)), 0.0) * 7
            if day < onset:
                continue
            frac = 1.0 if ramp == 0 else min((day - onset).days / ramp, 1.0)
            m *= 1 + (factor - 1) * frac
        return m

    def rng(self, *parts: Any) -> np.random.Generator:
        key = "|".join(str(p) for p in parts)
        return np.random.default_rng([self.s.seed, zlib.crc32(key.encode())])

    def count(self, source: str, substance: str, period: date, base: float) -> int:
        lam = base * self.multiplier(substance, period)
        return int(self.rng(source, substance, period).poisson(lam))

    def as_of(self, src: dict[str, Any], day: date) -> date:
        """The date a source's content is current to: frozen during an outage of a file
        source (its table stops advancing), then it catches up."""
        for o in self.s.outages:
            if o["source"] == src["name"] and _d(o["from"]) <= day < _d(o["until"]):
                return _d(o["from"])
        return day

    def down(self, src: dict[str, Any], day: date) -> bool:
        return any(o["source"] == src["name"] and _d(o["from"]) <= day < _d(o["until"])
                   for o in self.s.outages)

    # documents
    def render(self, src: dict[str, Any], day: date, now: datetime) -> dict[str, tuple[bytes, str]]:
        """``{relative path: (bytes, content type)}`` of a source as of ``day``."""
        kind = src["kind"]
        if kind == "rss":
            return {f"{src['name']}/rss.xml": (self.rss(src, now), "application/rss+xml")}
        if kind == "overdosefare":
            return {f"{src['name']}/varsler": (self.notice_page(now), "text/html; charset=utf-8")}
        if kind == "google_trends":
            return self.trends(src, day)
        if kind == "count_table":
            at = self.as_of(src, day)
            return {f"{src['name']}/table.csv": (self.table(src, at), "text/csv; charset=utf-8")}
        raise ValueError(f"{self.s.path}: source {src['name']}: unknown kind {kind!r}")

    def titles(self, substance: str, what: str) -> list[str]:
        return list(self.s.headlines.get(substance, {}).get(what, []))

    def rss(self, src: dict[str, Any], now: datetime) -> bytes:
        first = _monday(now.date()) - timedelta(weeks=int(src.get("window_weeks", 26)))
        items = []
        week = first
        decoys = list(self.s.headlines.get("decoys", []))
        while week <= now.date():
            for sub, base in sorted(src.get("weekly", {}).items()):
                n = self.count(src["name"], sub, week, float(base))
                names, slang = self.titles(sub, "names"), self.titles(sub, "slang")
                pool = names + slang
                r = self.rng(src["name"], "titles", sub, week)
                for j in range(n):
                    if not pool:
                        break
                    title = pool[int(r.integers(len(pool)))]
                    items.append((week, sub, j, title))
            nd = int(src.get("decoys_per_week", 0))
            r = self.rng(src["name"], "decoys", week)
            for j in range(nd if decoys else 0):
                items.append((week, "decoy", j, decoys[int(r.integers(len(decoys)))]))
            week += timedelta(weeks=1)
        out = []
        base = f"https://{src['name']}.example"
        for week, sub, j, title in items:
            when = datetime.combine(week, time(6), UTC) + timedelta(hours=(7 * j + 5) % 150)
            if when > now:
                continue
            guid = f"{base}/{week.isoformat()}/{sub}/{j}"
            text = title.replace("{n}", str(j + 1))
            out.append(
                f"<item><title>{escape(text)}</title><link>{guid}</link><guid>{guid}</guid>"
                f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{src['name']}</title><link>{base}</link><description>nyheter</description>"
            + "".join(reversed(out)) + "</channel></rss>"
        ).encode()

    def notice_page(self, now: datetime) -> bytes:
        arts = []
        for i, n in enumerate(sorted(self.s.notices, key=lambda n: n["published"], reverse=True)):
            when = datetime.fromisoformat(n["published"])
            if when > now:
                continue
            arts.append(
                f'<article class="varsel"><h2><a href="/varsler/{i}-{n.get("slug", "varsel")}">'
                f'{escape(n["title"])}</a></h2><time datetime="{when.isoformat()}">'
                f"{when.date().isoformat()}</time><p>{escape(n.get('text', ''))}</p></article>"
            )
        return (
            '<!DOCTYPE html><html lang="no"><head><meta charset="utf-8"><title>Varsler</title>'
            '</head><body><main><h1>Varsler</h1><section class="varsler">'
            + "".join(arts) + "</section></main></body></html>"
        ).encode()

    def trends(self, src: dict[str, Any], day: date) -> dict[str, tuple[bytes, str]]:
        every = int(src.get("export_every_weeks", 4))
        span = int(src.get("export_weeks", 104))
        # exports are made on Sundays, every `every` weeks from the first possible one
        first = self.s.history_from + timedelta(weeks=span)
        first += timedelta(days=(6 - first.weekday()) % 7)
        out = {}
        e = first
        oldest = self.install - timedelta(weeks=every)
        while e <= day:
            if e >= oldest:
                out[f"{src['name']}/multiTimeline_{e.isoformat()}.csv"] = (
                    self.trends_export(src, e, span), "text/csv; charset=utf-8")
            e += timedelta(weeks=every)
        return out

    def trends_export(self, src: dict[str, Any], end: date, span: int) -> bytes:
        subs = sorted(src.get("weekly", {}))
        weeks = [end - timedelta(weeks=span - i) for i in range(span)]
        raw = {}
        for sub in subs:
            base = float(src["weekly"][sub])
            raw[sub] = [base * self.multiplier(sub, w)
                        * float(self.rng(src["name"], sub, w).gamma(40.0, 1 / 40.0))
                        for w in weeks]
        peak = max(max(v) for v in raw.values()) or 1.0
        region = src.get("geo", "Vestland")
        lines = ["Category: All categories", "",
                 "Week," + ",".join(f"{src.get('terms', {}).get(s, s)}: ({region})" for s in subs)]
        for i, w in enumerate(weeks):
            cells = []
            for s in subs:
                v = 100 * raw[s][i] / peak
                cells.append("<1" if v < 1 else str(int(round(v))))
            lines.append(w.isoformat() + "," + ",".join(cells))
        return ("\n".join(lines) + "\n").encode()

    def table(self, src: dict[str, Any], day: date) -> bytes:
        lag = timedelta(days=int(src.get("lag_days", 0)))
        monthly = src.get("period", "week") == "month"
        levels = src.get("monthly" if monthly else "weekly", {})
        rows = []
        p = _month_start(self.s.history_from) if monthly else _monday(self.s.history_from)
        while True:
            end = _next_month(p) if monthly else p + timedelta(weeks=1)
            if end + lag > day:
                break
            for sub, base in sorted(levels.items()):
                v = self.count(src["name"], sub, p, float(base))
                for rv in self.s.revisions:
                    first_p = _d(rv["period"])
                    span = int(rv.get("periods", 1))
                    last_p = first_p
                    for _ in range(span - 1):
                        last_p = _next_month(last_p) if monthly else last_p + timedelta(weeks=1)
                    if (rv["source"] == src["name"] and rv["substance"] == sub
                            and first_p <= p <= last_p and day < _d(rv["corrected"])):
                        v = int(round(max(v, 1) * float(rv["factor"])))
                row = [p.isoformat(), sub, str(v)]
                if monthly:
                    row.append(str(int(src.get("tests", 400))))
                rows.append(row)
            p = end
        head = ["periode", "stoff", "antall"] + (["analyser"] if monthly else [])
        return ("\n".join(";".join(r) for r in [head, *rows]) + "\n").encode()


# -- serving it ----------------------------------------------------------------------
class ContentServer:
    """A loopback HTTP server answering from a dict the harness replaces per date."""

    def __init__(self) -> None:
        self.content: dict[str, tuple[bytes, str]] = {}
        self.down: set[str] = set()
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0].lstrip("/")
                with outer.lock:
                    hit = outer.content.get(path)
                    down = path.split("/", 1)[0] in outer.down
                if down:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if hit is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, ctype = hit
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the config the operator would have written -------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {_toml_value(x)}"
                                for k, x in v.items()) + " }"
    raise TypeError(v)


def _table(name: str, d: dict[str, Any]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in d.items()) + "\n"


HARNESS_KEYS = {"weekly", "monthly", "window_weeks", "decoys_per_week", "export_every_weeks",
                "export_weeks", "lag_days", "tests", "served", "geo", "period"}


def write_config(scenario: Scenario, workdir: Path, server: ContentServer,
                 smtp_url: str) -> Path:
    cfg = scenario.config
    general = {"state_dir": str(workdir / "state"), "log_level": "WARNING",
               "timezone": "Europe/Oslo", **cfg.get("general", {})}
    alerting = {"chart": False, "send_resolved": True,
                **{k: v for k, v in cfg.get("alerting", {}).items() if k != "digest"}}
    digest = {"schedule": "weekly", "weekday": "mon", "at": "08:00", "targets": ["ops"],
              **cfg.get("alerting", {}).get("digest", {})}
    out = _table("general", general) + _table("alerting", alerting)
    out += _table("alerting.digest", digest)
    for sid, sc in scenario.substances.items():
        out += _table(f"substances.{sid}", sc)
    for src in scenario.sources:
        kind = src["kind"]
        d: dict[str, Any] = {"name": src["name"], "kind": kind,
                             "dimension": src.get("dimension", "use"), "interval": "1d",
                             "region": src.get("region", "46")}
        if kind == "rss":
            d["location"] = server.url(f"{src['name']}/rss.xml")
        elif kind == "overdosefare":
            d["location"] = server.url(f"{src['name']}/varsler")
        elif kind == "google_trends":
            d["location"] = str(workdir / "files" / src["name"] / "*.csv")
            d["terms"] = {src.get("terms", {}).get(s, s): s for s in src.get("weekly", {})}
        elif kind == "count_table":
            served = src.get("served", "files")
            d["location"] = (server.url(f"{src['name']}/table.csv") if served == "http"
                             else str(workdir / "files" / src["name"] / "table.csv"))
            cols = {"period": "periode", "substance": "stoff", "value": "antall"}
            if src.get("period") == "month":
                cols["denominator"] = "analyser"
            d.update(columns=cols, delimiter=";", period=src.get("period", "week"))
        d.update({k: v for k, v in src.items() if k not in d and k not in HARNESS_KEYS})
        out += "[[sources]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in d.items()) + "\n"
    out += f'[[targets]]\nname = "ops"\nurl = {_toml_value(smtp_url)}\n'
    p = workdir / "config.toml"
    p.write_text(out, encoding="utf-8")
    return p


# -- running it ------------------------------------------------------------------------
@dataclass
class Message:
    sent_on: date
    id: int
    substance: str
    kind: str
    direction: str | None
    decision: str
    severity: str
    title: str
    data: dict[str, Any]


@dataclass
class Run:
    scenario: Scenario
    install: date
    messages: list[Message]
    emails: int
    deliveries: int
    states: dict[str, dict[str, Any]]
    workdir: Path
    config_path: Path
    steps: list[date]

    def about(self, substance: str, *kinds: str) -> list[Message]:
        kinds = kinds or ("trend", "spike")
        return [m for m in self.messages if m.substance == substance and m.kind in kinds]

    def open_substances(self) -> set[str]:
        """Substances with a trend-increase episode open in any series at the end."""
        out = set()
        for scope, st in self.states.items():
            if scope.startswith("series:") and "trend:increase" in (st.get("active") or {}):
                out.add(scope.split(":")[2])
        return out


def run(scenario: Scenario, workdir: Path, smtp: Any, *, install: date | None = None,
        until: date | None = None, dates: list[date] | None = None,
        on_step: Any = None) -> Run:
    """Move the clock through the run dates; return the message stream."""
    from tests.servers import wait_for
    from warnd.config import load_config
    from warnd.pipeline import Pipeline
    from warnd.store import Store

    install = install or scenario.install
    steps = dates or scenario.run_dates(install, until)
    world = World(scenario, install)
    server = ContentServer()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        cfg_path = write_config(scenario, workdir, server, smtp.url())
        cfg = load_config(cfg_path)
        messages: list[Message] = []
        seen: set[int] = set()
        before = len(smtp.messages)
        delivered = 0
        for day in steps:
            now = datetime.combine(day, scenario.run_at, UTC)
            content: dict[str, tuple[bytes, str]] = {}
            down = set()
            for src in scenario.sources:
                docs = world.render(src, day, now)
                if src.get("served", "http" if src["kind"] in ("rss", "overdosefare")
                           else "files") == "http":
                    content.update(docs)
                    if world.down(src, day):
                        down.add(src["name"])
                else:
                    for rel, (body, _) in docs.items():
                        p = workdir / "files" / rel
                        p.parent.mkdir(parents=True, exist_ok=True)
                        if not p.exists() or p.read_bytes() != body:
                            p.write_bytes(body)
            with server.lock:
                server.content, server.down = content, down
            res = Pipeline(cfg, clock=lambda now=now: now).run_once()
            delivered += res["deliveries"]["delivered"]
            wait_for(lambda: len(smtp.messages) - before >= delivered, timeout=30,
                     what=f"{delivered} emails by {day}")
            store = Store.in_dir(cfg.state_dir)
            try:
                for r in store.q("SELECT * FROM alerts ORDER BY id"):
                    if r["id"] in seen:
                        continue
                    seen.add(r["id"])
                    messages.append(Message(
                        sent_on=day, id=r["id"], substance=r["substance"] or "",
                        kind=r["kind"], direction=r["direction"], decision=r["decision"],
                        severity=r["severity"], title=r["title"],
                        data=json.loads(r["data"] or "{}")))
                if on_step is not None:
                    on_step(day, store, res)
            finally:
                store.close()
        store = Store.in_dir(cfg.state_dir)
        try:
            states = {r["scope"]: json.loads(r["state"])
                      for r in store.q("SELECT scope, state FROM episodes")}
            deliveries = store.q("SELECT COUNT(*) AS n FROM deliveries "
                                 "WHERE status='delivered'")[0]["n"]
        finally:
            store.close()
        return Run(scenario, install, messages, len(smtp.messages) - before, deliveries,
                   states, workdir, cfg_path, steps)
    finally:
        server.stop()


def describe(run_: Run) -> str:
    lines = [f"{run_.scenario.title} — installed {run_.install}"]
    for m in run_.messages:
        lines.append(f"{m.sent_on}  #{m.id:<3} {m.decision:9} {m.kind:13} "
                     f"{m.substance or '-':9} [{m.severity}] {m.title}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    import tempfile

    sys.path.insert(0, str(ROOT))
    from tests.servers import SmtpServer

    ap = argparse.ArgumentParser(description="Replay a time-travel scenario through warnd.")
    ap.add_argument("scenario")
    ap.add_argument("--install", type=date.fromisoformat)
    ap.add_argument("--until", type=date.fromisoformat)
    args = ap.parse_args(argv)
    sc = Scenario.load(args.scenario)
    smtp = SmtpServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            r = run(sc, Path(tmp), smtp, install=args.install, until=args.until)
            print(describe(r))
            for sub in sc.expect.get("rising", []):
                first = next((m for m in r.about(sub)), None)
                onset = sc.onset(sub)
                if first and onset:
                    print(f"{sub}: onset {onset}, first message {first.sent_on} "
                          f"({(first.sent_on - onset).days} days)")
    finally:
        smtp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
