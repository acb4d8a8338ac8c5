"""The counters of ``/metrics`` over a service's life: polls, a table revised, a source
that fails, one taken out of the config and put back, a replay of the store, a message
that expires and an operator's retry. Prometheus scrapes the real listener after each
step (the real pipeline, store and outbox; the clock is passed in): no counter goes
down, for a decrease is read as a restart and ``increase()`` counts it all again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.service_kit import counts_csv, write_service_config
from tests.test_service import source
from tests.test_stream_operators import DEAD, _counters, _went_down
from warnd.alerting import outbox
from warnd.cli import main
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.service.health import HealthServer
from warnd.store import Store

START = date(2024, 1, 1)  # a Monday
WEEKS = 60


def _table(weeks: int, seed: int = 1) -> bytes:
    return counts_csv(["ketamin", "heroin"], weeks=weeks, seed=seed, start=START,
                      jump={"ketamin": weeks - 6})


def test_no_counter_goes_down_over_a_services_life(tmp_path, capsys):
    """Sixty weeks of a lab table with a rise at the end, and a second source whose file
    is missing. The rise is told to a dead relay and expires (so does the message that
    the other source is unhealthy); the table comes again with a new week and earlier
    weeks revised; the failing source is taken out of the config and put back; the
    store is replayed (`warnd backtest --replay store`); the operator re-queues the
    expired rise, which fails again. After each step every counter is at least what it
    was, and the counters moved where something happened."""
    (tmp_path / "lab.csv").write_bytes(_table(WEEKS))
    both = source("lab", "lab.csv") + source("other", "missing.csv")
    general = 'fetch_retries = 0\n[alerting]\nexpire_after = "2h"\n'
    targets = f'\n[[targets]]\nname = "mail"\nurl = "{DEAD}"\n'

    def config(sources: str):
        return load_config(write_service_config(tmp_path / "config.toml", sources=sources,
                                                targets=targets, general=general))

    live = {"cfg": config(both)}
    now = datetime.combine(START + timedelta(weeks=WEEKS), datetime.min.time(), UTC)
    now += timedelta(hours=12)

    def cycle(at: datetime) -> None:
        Pipeline(live["cfg"], clock=lambda: at).run_once()

    srv = HealthServer("127.0.0.1:0", lambda: live["cfg"], lambda: {"alive": True}).start()
    url = "http://{}:{}".format(*srv.address)
    scrapes = []
    try:
        cycle(now)
        scrapes.append(("the first poll", _counters(url)))
        store = Store.in_dir(live["cfg"].state_dir)
        (aid,) = [r["id"] for r in store.q("SELECT id FROM alerts WHERE kind='trend'")]
        for hours in range(1, 6):  # the relay refuses until the messages expire
            cycle(now + timedelta(hours=hours))
        # the rise, and the missing file's source unhealthy after three polls
        assert store.q("SELECT a.kind, d.status FROM deliveries d JOIN alerts a "
                       "ON a.id = d.alert_id ORDER BY a.id") == [
            {"kind": "trend", "status": "expired"},
            {"kind": "source_health", "status": "expired"}]
        scrapes.append(("the messages expired", _counters(url)))

        now += timedelta(weeks=1)
        (tmp_path / "lab.csv").write_bytes(_table(WEEKS + 1, seed=2))  # every week revised
        cycle(now)
        scrapes.append(("a new week, the earlier ones revised", _counters(url)))

        live["cfg"] = config(source("lab", "lab.csv"))  # a reload without the other source
        cycle(now + timedelta(hours=1))
        scrapes.append(("a source taken out", _counters(url)))
        live["cfg"] = config(both)
        cycle(now + timedelta(hours=2))
        scrapes.append(("the source put back", _counters(url)))

        conf = ["--config", str(live["cfg"].path)]
        assert main([*conf, "backtest", "--replay", "store"]) == 0
        scrapes.append(("a replay of the store", _counters(url)))

        assert main([*conf, "outbox", "retry", str(aid)]) == 0
        scrapes.append(("outbox retry", _counters(url)))
        outbox.dispatch_pending(live["cfg"], store, now=datetime.now(UTC))
        scrapes.append(("its next attempt", _counters(url)))
        store.close()
        capsys.readouterr()
    finally:
        srv.stop()
    assert _went_down(scrapes) == []
    first, last = scrapes[0][1], scrapes[-1][1]
    grew = {name for name, labels in last
            if last[name, labels] > first.get((name, labels), 0)}
    assert {"warnd_source_polls_total", "warnd_source_poll_failures_total",
            "warnd_observation_revisions_total", "warnd_documents_ingested_total",
            "warnd_delivery_attempts_total", "warnd_alerts_failed_total"} <= grew, grew
    assert last["warnd_source_polls_total", (("source", "other"),)] == 8
    assert last["warnd_alerts_failed_total", ()] == 2  # each expired once
