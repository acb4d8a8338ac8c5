"""Light commands: ``warnd status`` reads counts from the ``series`` table and the newest
periods from each series' end, and starts without what sending, parsing web pages or
drawing need."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from feeds.base import Observation
from tests.service_kit import child_env, counts_csv, write_service_config
from tests.test_service import source
from warnd.alerting.freshness import stale_data
from warnd.store import Store

HEAVY = ("apprise", "bs4", "feedparser", "jinja2", "matplotlib", "numpy", "scipy", "ruptures",
         "prometheus_client", "apscheduler", "detectors.engine", "feeds.notices")


def _ingest(store: Store, source: str, rows: list[tuple[str, str, date, float]]) -> None:
    store.ingest(source, location=f"{source}.csv", sha256=None, items=(), problems=(),
                 observations=[Observation(source=source, substance=sub, region=reg,
                                           period=p, value=v) for sub, reg, p, v in rows])


def test_newest_periods_equal_a_scan_of_all_history(tmp_path) -> None:
    """Series on different grids (weekly, monthly, sparse, a few points, ended early):
    the newest distinct periods read from each series' end equal those of a full scan."""
    rnd = random.Random(7)
    store = Store(tmp_path / "w.sqlite")
    start = date(2023, 1, 2)
    rows = []
    for i in range(8):
        step = rnd.choice([1, 7, 7, 14, 30])
        n = rnd.choice([3, 11, 12, 13, 40, 90])
        first = start + timedelta(days=rnd.randrange(60))
        days = sorted({first + timedelta(days=step * k + rnd.choice([0, 0, 0, 1, 2]))
                       for k in range(n)})
        rows += [(f"s{i}", "r1" if i % 2 else "", d, float(k)) for k, d in enumerate(days)]
    _ingest(store, "a", rows)
    _ingest(store, "b", [("s0", "", start, 1.0)])
    try:
        for src in ("a", "b", "nobody"):
            for n in (1, 2, 5, 12, 30):
                full = [r[0] for r in store.db.execute(
                    "SELECT DISTINCT period FROM observations WHERE source=? "
                    "ORDER BY period DESC LIMIT ?", [src, n])]
                assert store.newest_periods(src, n) == full, (src, n)
        assert store.newest_period("a") == max(d for *_, d, _ in rows).isoformat()
        assert store.newest_period("nobody") is None
    finally:
        store.close()


def _rule(store: Store, source: str, now: datetime) -> dict | None:
    """The stale-data rule computed from all of a source's history."""
    days = sorted(date.fromisoformat(r[0]) for r in store.db.execute(
        "SELECT DISTINCT period FROM observations WHERE source=? ORDER BY period DESC "
        "LIMIT 12", [source]))
    if len(days) < 2:
        return None
    gaps = sorted((b - a).days for a, b in zip(days, days[1:], strict=False))
    age = (now.date() - days[-1]).days
    if age <= 2 * gaps[len(gaps) // 2] + 14:
        return None
    return {"source": source, "period": days[-1].isoformat(), "days": age}


def test_stale_data_follows_the_rule_on_fresh_and_old_data(tmp_path) -> None:
    store = Store(tmp_path / "w.sqlite")
    monday = date(2024, 1, 1)
    _ingest(store, "weekly", [(s, "", monday + timedelta(weeks=k), 5.0)
                              for s in ("x", "y") for k in range(30)])
    _ingest(store, "monthly", [("x", "", date(2023, m, 1), 5.0) for m in range(1, 13)])
    _ingest(store, "one", [("x", "", monday, 5.0)])
    try:
        flagged = {}
        for src in ("weekly", "monthly", "one"):
            for days in range(0, 120, 3):
                now = datetime(2024, 7, 22, tzinfo=UTC) + timedelta(days=days)
                if src == "monthly":
                    now = datetime(2023, 12, 1, tzinfo=UTC) + timedelta(days=days)
                got = stale_data(store, src, now=now)
                assert got == _rule(store, src, now), (src, days)
                assert stale_data(store, src, now=now,
                                  newest_by_source=store.newest_period_by_source()) == got
                flagged.setdefault(src, set()).add(got is not None)
        # each kind of source was seen both fresh and with old data (one point: never)
        assert flagged == {"weekly": {False, True}, "monthly": {False, True}, "one": {False}}
    finally:
        store.close()


def test_status_starts_without_heavy_modules_and_leaves_url_and_option_checks_to_others(
        tmp_path) -> None:
    """``warnd status`` on a real store: its counts, without loading apprise's plugins,
    HTML and feed parsers, charts or statistics. A target URL apprise refuses or a
    source option only its parser can check does not stop ``status`` (it sends and
    fetches nothing); ``check-config`` still refuses both."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "counts.csv").write_bytes(
        counts_csv(["ketamin", "heroin"], weeks=30, start=date.today() - timedelta(weeks=29)))
    cfg = write_service_config(
        tmp_path / "config.toml", sources=source("tab", "data"),
        targets='[[targets]]\nname = "hook"\nurl = "json://127.0.0.1:9/hook"\n')
    env = child_env()
    run = subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(cfg), "run",
                          "--once"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    probe = ("import json, sys; from warnd.cli import main; rc = main(sys.argv[1:]); "
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr);"
             " sys.exit(rc)")

    def status() -> tuple[int, dict, list[str]]:
        r = subprocess.run([sys.executable, "-c", probe, "--config", str(cfg), "status",
                            "--json"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
        return r.returncode, json.loads(r.stdout), json.loads(r.stderr.strip().splitlines()[-1])

    rc, st, loaded = status()
    assert rc == 0 and st["healthy"], st["problems"]
    assert [(s["name"], s["series"]) for s in st["sources"]] == [("tab", 2)]
    assert st["stale_data_sources"] == [] and st["sources"][0]["newest_period"] is None
    assert loaded == []

    # a notice page (HTML parser) and a target URL apprise refuses
    cfg.write_text(cfg.read_text().replace("json://127.0.0.1:9/hook", "nosuchscheme://x/y")
                   + source("page", "http://127.0.0.1:9/x", kind="overdosefare")
                   + 'item_selector = "div[["\n')
    rc, st, loaded = status()
    assert [(s["name"], s["series"]) for s in st["sources"]] == [("tab", 2), ("page", 0)]
    assert loaded == [] and "feeds.notices" not in loaded
    check = subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(cfg),
                            "check-config"], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 78
    assert 'target "hook" cannot be used: unknown scheme "nosuchscheme://"' in check.stderr
    assert "sources[1].item_selector" in check.stderr


def test_backtest_reads_only_the_detection_settings_of_a_config(tmp_path) -> None:
    """``warnd backtest --observations`` takes its detection settings from the config
    without loading apprise or the sources' parsers: a source option only a parser can
    check and a target URL apprise refuses do not stop it, the detection settings do
    change its findings."""
    from tests.test_backtest import write_csv

    obs = write_csv(tmp_path / "obs.csv")
    cfg = write_service_config(
        tmp_path / "config.toml", sources=source("page", "http://127.0.0.1:9/x",
                                                 kind="overdosefare")
        + 'item_selector = "div[["\n',
        targets='[[targets]]\nname = "hook"\nurl = "nosuchscheme://x/y"\n')
    probe = ("import json, sys; from warnd.cli import main; rc = main(sys.argv[1:]); "
             "print(json.dumps([m for m in ('apprise', 'bs4', 'feedparser', 'feeds.notices')"
             " if m in sys.modules]), file=sys.stderr); sys.exit(rc)")

    def backtest() -> tuple[list[dict], list[str]]:
        r = subprocess.run([sys.executable, "-c", probe, "--config", str(cfg), "backtest",
                            "--observations", str(obs), "--json"], env=child_env(),
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout), json.loads(r.stderr.strip().splitlines()[-1])

    alerts, loaded = backtest()
    assert loaded == []
    assert any(a["substance"] == "cocaine" for a in alerts)
    cfg.write_text(cfg.read_text() + "\n[detection]\nmin_points = 500\n")
    alerts, loaded = backtest()
    assert alerts == [] and loaded == []


def test_backtest_without_a_config_never_imports_the_config_module(tmp_path) -> None:
    """With no config to read, ``warnd backtest --observations`` runs on the default
    detection settings without importing the config module (its validation models)."""
    from tests.test_backtest import write_csv
    from warnd.backtest import run_backtest

    obs = write_csv(tmp_path / "obs.csv")
    probe = ("import json, sys; from warnd.cli import main; rc = main(sys.argv[1:]); "
             "print(json.dumps([m for m in ('warnd.config', 'warnd.service.health')"
             " if m in sys.modules]), file=sys.stderr); sys.exit(rc)")
    env = {k: v for k, v in child_env().items() if k != "WARND_CONFIG"}
    r = subprocess.run([sys.executable, "-c", probe, "backtest", "--observations", str(obs),
                        "--json"], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stderr.strip().splitlines()[-1]) == []
    assert json.loads(r.stdout) == json.loads(json.dumps(run_backtest(obs), default=str))


def test_status_and_check_config_run_without_the_cycle_collector(tmp_path, monkeypatch):
    """``status`` and ``check-config`` (short, read only) run with Python's cycle
    collector off and leave it on after them; other commands keep it on."""
    import gc

    import warnd.cli as cli

    (tmp_path / "data").mkdir()
    cfg = write_service_config(tmp_path / "config.toml", sources=source("tab", "data"))
    collecting: list[tuple[str, bool]] = []
    real = cli.load_config

    def loading(*a, **kw):
        collecting.append((command, gc.isenabled()))
        return real(*a, **kw)

    monkeypatch.setattr(cli, "load_config", loading)
    for command in ("status", "check-config", "alerts"):
        cli.main(["--config", str(cfg), command])
        assert gc.isenabled(), command
    assert collecting == [("status", False), ("check-config", False), ("alerts", True)]


def test_output_closed_by_its_reader_ends_the_command_quietly(tmp_path) -> None:
    """``warnd status | head -1``: the reader of the output goes away before the command
    has written it. The command ends with the shell's code for a process ended by
    SIGPIPE (141) and nothing on stderr, not a traceback; its output to a reader that
    stays is whole (the real console script, with the pipe's reading end closed before
    the command writes)."""
    cfg = write_service_config(tmp_path / "config.toml", sources=source("tab", "data"))
    from warnd.config import load_config

    Store.in_dir(load_config(cfg).state_dir).close()  # status reads a store that exists
    env = child_env()
    script = str(Path(sys.executable).parent / "warnd")
    cmd = [script, "--config", str(cfg), "status"]
    read, write = os.pipe()
    os.close(read)  # nobody reads: the first write fails with EPIPE
    try:
        r = subprocess.run(cmd, env=env, cwd=tmp_path, stdout=write,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert (r.returncode, r.stderr) == (141, "")
    whole = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert whole.returncode == 0 and whole.stdout.startswith("state: "), whole.stderr


def test_reading_commands_make_no_store_where_there_is_none(tmp_path, monkeypatch,
                                                            capsys) -> None:
    """`status`, `alerts`, `outbox`, `digest`, `silence list` and `report` pointed at a
    state directory without a store (a mistyped $WARND_STATE_DIR) say so and exit 1,
    leaving the directory as it was. Before, each made a new, empty store there, and
    `status` then called it healthy. `silence add` may come before the first run: it
    makes the store."""
    from warnd.cli import main

    cfg = write_service_config(tmp_path / "config.toml", sources=source("tab", "data"))
    monkeypatch.setenv("WARND_STATE_DIR", str(tmp_path / "nowhere"))
    for command in (["status"], ["status", "--json"], ["alerts"], ["outbox"], ["digest"],
                    ["silence", "list"], ["report"]):
        assert main(["--config", str(cfg), *command]) == 1, command
        out = capsys.readouterr()
        assert out.out == "", (command, out.out)
        assert out.err.startswith(f"warnd: {command[0]}: no store in {tmp_path / 'nowhere'}")
        assert not (tmp_path / "nowhere").exists(), command
    assert main(["--config", str(cfg), "silence", "add", "--substance", "ketamin", "--for",
                 "1d", "--reason", "before the first run"]) == 0
    assert (tmp_path / "nowhere" / "warnd.sqlite").exists()
