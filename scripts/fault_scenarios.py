"""Delivery faults one by one, against a real loopback SMTP relay (aiosmtpd) and a real
HTTPS Teams workflow endpoint (TLS with a test CA), each reporting alerts expected,
delivered, lost and duplicated (with the Message-IDs of email repeats).

Used by ``scripts/fault_injection.py`` (``make fault-injection``) after its SIGKILL
rounds; ``tests/test_faults.py`` runs a short version. Time is moved through the real
outbox (``dispatch_pending(now=...)``) where a fault lasts hours; the second daemon
and the bad stores are real ``warnd`` processes.

Scenarios:

``second_daemon``      a second ``warnd run`` on the same state directory
``locked_store``       the store locked by another writer while outcomes are recorded
``target_down``        the relay down longer than ``expire_after``, then back; the
                       expired deliveries re-queued with ``warnd outbox retry``
``retry_after``        the endpoint answers 429 with ``Retry-After: 7200``; dispatch every
                       30 s for 2.5 hours
``slow_target``        the endpoint answers after 3 s; ``read_timeout`` 1 s, then 10 s
``poisoned_notice``    a notice whose title alone is over the Teams card limit
``bad_stores``         a damaged and a zero-byte store under ``warnd run --once``
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 7, 7, 10, 0, tzinfo=UTC)  # a Tuesday, working hours

SOURCES = """
[[sources]]
name = "overdosefare"
kind = "overdosefare"
location = "data/notices.xml"
interval = "1h"
dimension = "availability"
"""


def _config(work: Path, targets: str, extra: str = "") -> Any:
    from tests.conftest import write_config
    from warnd.config import load_config

    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    return load_config(write_config(work, SOURCES + targets + extra))


def _target(name: str, url: str, extra: str = "") -> str:
    return f'\n[[targets]]\nname = "{name}"\nurl = "{url}"\n{extra}'


def _notice(cfg: Any, store: Any, key: str, title: str, summary: str = "") -> int:
    from warnd.alerting import decide

    src = SimpleNamespace(name="overdosefare", region="")
    item = SimpleNamespace(key=key, title=title, link=f"https://overdosefare.example/{key}",
                           published_at=NOW - timedelta(hours=1), region="", summary=summary)
    aid = decide.enqueue_notice(cfg, store, src, item, "ketamin", now=NOW)
    assert aid is not None
    return int(aid)


def _wait(cond: Callable[[], Any], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def _tally(expected: int, received: Counter[str], mids: dict[str, list[str]] | None = None,
           **extra: Any) -> dict[str, Any]:
    """expected vs delivered, lost, duplicates (and whether repeats kept their Message-ID)."""
    delivered = len(received)
    dups = {k: n - 1 for k, n in received.items() if n > 1}
    out = {"expected": expected, "delivered": delivered, "lost": expected - delivered,
           "duplicates": sum(dups.values()), **extra}
    if mids is not None:
        out["duplicates_same_message_id"] = all(
            len(set(mids[k])) == 1 for k in dups if k in mids)
    return out


def _mail_counts(smtp: Any) -> tuple[Counter[str], dict[str, list[str]]]:
    received: Counter[str] = Counter()
    mids: dict[str, list[str]] = {}
    for m in smtp.messages:
        key = str(m["Subject"])
        received[key] += 1
        mids.setdefault(key, []).append(str(m["Message-ID"]))
    return received, mids


# -- scenarios ---------------------------------------------------------------------------
def second_daemon(work: Path, smtp: Any, https: Any) -> dict[str, Any]:
    from tests.service_kit import DaemonProcess, notices_rss

    cfg = _config(work, _target("mail", smtp.url()))
    (work / "data").mkdir(exist_ok=True)
    (work / "data" / "notices.xml").write_bytes(notices_rss(6, "ketamin", tag="sd"))
    log = work / "daemon.log"
    a = DaemonProcess(cfg.path, log).start()
    try:
        a.wait_for(r"warnd started", timeout=120)
        b = subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(cfg.path), "run"],
                           capture_output=True, text=True, timeout=60, cwd=str(work),
                           env=_env())
        _wait(lambda: len(smtp.messages) >= 6, 120)
        a.signal(signal.SIGTERM)
        a.wait(60)
    finally:
        a.kill()
    received, mids = _mail_counts(smtp)
    return _tally(6, received, mids, second_exit_code=b.returncode,
                  second_said=b.stderr.strip().splitlines()[-1][:160] if b.stderr else "")


def locked_store(work: Path, smtp: Any, https: Any) -> dict[str, Any]:
    from warnd.alerting import outbox
    from warnd.alerting.send import send as real_send
    from warnd.store import Store

    cfg = _config(work, _target("mail", smtp.url()))
    setup = Store.in_dir(cfg.state_dir)
    for i in range(8):
        _notice(cfg, setup, f"l{i}", f"Advarsel {i}")
    setup.close()
    store = Store(cfg.state_dir / "warnd.sqlite", timeout=0.3)
    blocker = sqlite3.connect(cfg.state_dir / "warnd.sqlite", timeout=5,
                              check_same_thread=False)
    calls: list[str] = []

    def send_then_lock(url: str, **kw: Any) -> Any:
        r = real_send(url, **kw)
        calls.append(kw["title"])
        if len(calls) == 4:  # another writer holds the store from here on
            blocker.execute("BEGIN IMMEDIATE")
        return r

    counts = outbox.dispatch_pending(cfg, store, now=NOW, send=send_then_lock)
    blocker.rollback()
    blocker.close()
    for k in range(1, 10):  # every minute: nothing is re-sent while the claims live
        outbox.dispatch_pending(cfg, store, now=NOW + timedelta(minutes=k))
    before_expiry = len(smtp.messages)
    outbox.dispatch_pending(cfg, store, now=NOW + timedelta(minutes=11))  # lease: 10 min
    store.close()
    _wait(lambda: len(smtp.messages) >= 8)
    received, mids = _mail_counts(smtp)
    return _tally(8, received, mids, unrecorded=counts["unrecorded"],
                  messages_before_claims_expired=before_expiry)


def target_down(work: Path, smtp: Any, https: Any) -> dict[str, Any]:
    from tests.servers import SmtpServer
    from warnd.alerting import outbox
    from warnd.store import Store

    down = SmtpServer()  # not started: refused
    cfg = _config(work, _target("mail", down.url()))
    store = Store.in_dir(cfg.state_dir)
    for i in range(5):
        _notice(cfg, store, f"d{i}", f"Advarsel {i}")
    t = NOW
    while t <= NOW + timedelta(days=2, hours=2):  # every 30 s would be 5,760 rounds:
        outbox.dispatch_pending(cfg, store, now=t)  # a round every 10 min is enough
        t += timedelta(minutes=10)
    expired = store.q("SELECT COUNT(*) AS n FROM deliveries WHERE status='expired'")[0]["n"]
    # (those that waited with their target expired without an attempt)
    attempts = store.q("SELECT SUM(attempts) AS n FROM deliveries")[0]["n"]
    down.start()
    try:
        ids = [r["alert_id"] for r in outbox.list_deliveries(store, statuses=("expired",))]
        requeued = sum(outbox.retry_delivery(store, aid, now=t) for aid in ids)
        outbox.dispatch_pending(cfg, store, now=t)
        for k in range(1, 6):
            outbox.dispatch_pending(cfg, store, now=t + timedelta(hours=k))
        _wait(lambda: len(down.messages) >= 5)
        received, mids = _mail_counts(down)
    finally:
        down.stop()
        store.close()
    return _tally(5, received, mids, expired_while_down=expired, requeued=requeued,
                  failed_attempts=attempts)


def retry_after(work: Path, smtp: Any, https: Any) -> dict[str, Any]:
    from warnd.alerting import outbox
    from warnd.store import Store

    https.status, https.reply_headers = 429, {"Retry-After": "7200"}
    cfg = _config(work, _target("teams", https.url()))
    store = Store.in_dir(cfg.state_dir)
    for i in range(5):
        _notice(cfg, store, f"r{i}", f"Advarsel {i}")
    t = NOW
    posts_while_429 = 0
    while t < NOW + timedelta(hours=2, minutes=30):
        if t >= NOW + timedelta(hours=1, minutes=59) and https.status == 429:
            posts_while_429 = len(https.requests)
            https.status, https.reply_headers = 202, {}
        outbox.dispatch_pending(cfg, store, now=t)
        t += timedelta(seconds=30)
    store.close()
    received = Counter(p.get("warnd_message_id", "") for p in https.payloads()[posts_while_429:])
    return _tally(5, received, posts_while_429=posts_while_429,
                  rounds=int(150 * 60 / 30))


def slow_target(work: Path, smtp: Any, https: Any) -> dict[str, Any]:
    from warnd.alerting import outbox
    from warnd.store import Store

    https.delay = 3.0
    out: dict[str, Any] = {}
    for rto in ("1s", "10s"):
        n0 = len(https.requests)
        cfg = _config(work / rto, _target("teams", https.url(), f'read_timeout = "{rto}"\n'))
        store = Store.in_dir(cfg.state_dir)
        for i in range(3):
            _notice(cfg, store, f"s{i}", f"Advarsel {i}")
        c = outbox.dispatch_pending(cfg, store, now=NOW)
        reason = store.q("SELECT last_error FROM deliveries WHERE last_error IS NOT NULL "
                         "LIMIT 1")
        store.close()
        out[f"read_timeout_{rto}"] = {"delivered": c["delivered"], "retrying": c["retrying"],
                                      "held": c["held"], "posts": len(https.requests) - n0,
                                      "reason": reason[0]["last_error"] if reason else None}
    https.delay = 0.0
    ok = out["read_timeout_10s"]
    return {"expected": 3, "delivered": ok["delivered"], "lost": 3 - ok["delivered"],
            "duplicates": max(0, ok["posts"] - 3), **out}


def poisoned_notice(work: Path, smtp: Any, https: Any) -> dict[str, Any]:
    from warnd.alerting import outbox
    from warnd.store import Store

    cfg = _config(work, _target("teams", https.url()) + _target("mail", smtp.url()))
    store = Store.in_dir(cfg.state_dir)
    _notice(cfg, store, "poison", "Ø" * 40_000, "s" * 1000)
    _notice(cfg, store, "plain", "Falske piller med ketamin")
    t0 = time.monotonic()
    c = outbox.dispatch_pending(cfg, store, now=NOW)
    took = time.monotonic() - t0
    store.close()
    _wait(lambda: len(smtp.messages) >= 2 and len(https.requests) >= 2)
    received = Counter(p.get("warnd_message_id", "") for p in https.payloads())
    received.update(str(m["Message-ID"]) for m in smtp.messages)
    return _tally(4, received, counts=c, dispatch_seconds=round(took, 2),
                  largest_card_bytes=max(len(r["body"]) for r in https.requests))


def bad_stores(work: Path, smtp: Any, https: Any) -> dict[str, Any]:
    from tests.service_kit import notices_rss

    cfg = _config(work, _target("mail", smtp.url()))
    (work / "data").mkdir(exist_ok=True)
    (work / "data" / "notices.xml").write_bytes(notices_rss(2, "ketamin", tag="bs"))

    def once() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "warnd.cli", "--config", str(cfg.path),
                               "run", "--once"], capture_output=True, text=True, timeout=120,
                              cwd=str(work), env=_env())

    first = once()
    _wait(lambda: len(smtp.messages) >= 2)
    db = cfg.state_dir / "warnd.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    good = db.read_bytes()
    data = bytearray(good)
    for start in range(8192, len(data) - 4096, 12288):
        data[start + 100:start + 600] = b"\xa5" * 500
    db.write_bytes(bytes(data))
    corrupt = once()
    db.write_bytes(b"")
    empty = once()
    db.write_bytes(good)
    again = once()
    received, mids = _mail_counts(smtp)
    return _tally(2, received, mids, first_exit=first.returncode,
                  damaged_exit=corrupt.returncode,
                  damaged_said=(corrupt.stderr.strip().splitlines() or [""])[-1][:160],
                  zero_byte_exit=empty.returncode,
                  zero_byte_said=(empty.stderr.strip().splitlines() or [""])[-1][:160],
                  restored_exit=again.returncode)


SCENARIOS: dict[str, Callable[[Path, Any, Any], dict[str, Any]]] = {
    "second_daemon": second_daemon,
    "locked_store": locked_store,
    "target_down": target_down,
    "retry_after": retry_after,
    "slow_target": slow_target,
    "poisoned_notice": poisoned_notice,
    "bad_stores": bad_stores,
}


def _env() -> dict[str, str]:
    from tests.service_kit import child_env

    return child_env()


def run_scenarios(work: Path, names: list[str] | None = None) -> dict[str, Any]:
    """Run the scenarios; each gets fresh servers and its own directory."""
    import trustme

    from tests.servers import HttpsServer, SmtpServer

    ca = trustme.CA()
    bundle = work / "ca.pem"
    work.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(bundle))
    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
    cwd = os.getcwd()
    out: dict[str, Any] = {}
    try:
        for name in names or list(SCENARIOS):
            smtp, https = SmtpServer().start(), HttpsServer(ca).start()
            try:
                out[name] = SCENARIOS[name](work / name, smtp, https)
            except Exception as e:  # a scenario that breaks is reported, the others run
                out[name] = {"error": f"{type(e).__name__}: {e}"[:500], "lost": None}
            finally:
                smtp.stop()
                https.stop()
    finally:
        os.chdir(cwd)
    return out


def checks(res: dict[str, Any]) -> dict[str, bool]:
    """What must hold for each scenario."""
    c: dict[str, bool] = {}
    for name, r in res.items():
        c[f"{name}_ran"] = "error" not in r
        c[f"{name}_nothing_lost"] = r.get("lost") == 0
        if "duplicates" in r and name != "locked_store":
            c[f"{name}_no_duplicates"] = r["duplicates"] == 0
    if "locked_store" in res and "error" not in res["locked_store"]:
        r = res["locked_store"]
        c["locked_store_repeats_only_unrecorded"] = r["duplicates"] <= r["unrecorded"]
        c["locked_store_repeats_same_message_id"] = r["duplicates_same_message_id"]
    if "second_daemon" in res and "error" not in res["second_daemon"]:
        c["second_daemon_exit_75"] = res["second_daemon"]["second_exit_code"] == 75
    if "retry_after" in res and "error" not in res["retry_after"]:
        c["retry_after_one_post_while_429"] = res["retry_after"]["posts_while_429"] == 1
    if "bad_stores" in res and "error" not in res["bad_stores"]:
        r = res["bad_stores"]
        c["bad_stores_refused"] = r["damaged_exit"] == 1 and r["zero_byte_exit"] == 1
    return c
