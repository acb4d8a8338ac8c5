"""A folder source's poll reads only its new and changed files.

Each file's version (size, modification and status-change times, inode) is kept when
it is ingested; a later poll that finds the same version does not open the file. A
file rewritten in place, even to the same size with its modification time set back,
is read again and its new values are stored; a file replaced by a copy of the same
bytes is read, found ingested, and adds nothing."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from feeds import fetch
from tests.service_kit import write_service_config
from tests.test_service import source
from warnd.cli import main
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

START = date(2025, 1, 6)


def _week(folder: Path, i: int, value: int) -> Path:
    p = folder / f"week{i:03d}.csv"
    day = (START + timedelta(weeks=i)).isoformat()
    p.write_text(f"period,substance,value\n{day},ketamin,{value}\n{day},heroin,{value + 1}\n")
    return p


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The files whose bytes a poll read (hashed), by name."""
    seen: list[str] = []
    real = fetch.LocalDocument._hash

    def hashing(self):
        seen.append(self.path.name)
        return real(self)

    monkeypatch.setattr(fetch.LocalDocument, "_hash", hashing)
    return seen


def _values(store: Store, substance: str) -> dict[str, float]:
    return {r["period"]: r["value"] for r in store.q(
        "SELECT period, value FROM observations WHERE substance=? ORDER BY period",
        [substance])}


def _listed(cfg, capsys) -> list[str]:
    """The problems `warnd status --json` lists of the config's one source, as read."""
    # (1: stale, as the wall clock has the lab's weeks long gone)
    assert main(["--config", str(cfg.path), "status", "--json"]) in (0, 1)
    (lab,) = json.loads(capsys.readouterr().out)["sources"]
    return [f"{p['location']}: {p['message']}" for p in lab["recent_problems"]]


def test_a_folder_poll_reads_only_new_and_changed_files(tmp_path, reads):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(5):
        _week(folder, i, 10 + i)
    cfg = load_config(write_service_config(tmp_path / "config.toml",
                                           sources=source("lab", str(folder))))
    pipe = Pipeline(cfg, clock=lambda: datetime(2025, 3, 1, tzinfo=UTC))

    first = pipe.poll("lab")
    assert first.ok and first.documents == 5 and sorted(reads) == [
        f"week{i:03d}.csv" for i in range(5)]

    # nothing changed: no file is opened
    reads.clear()
    again = pipe.poll("lab")
    assert again.ok and again.documents == 0 and again.skipped == 5
    assert reads == []

    # one new file: only it is read
    _week(folder, 5, 15)
    new = pipe.poll("lab")
    assert (new.documents, new.observations) == (1, 2) and reads == ["week005.csv"]

    # a file rewritten in place to the same size, its modification time set back
    reads.clear()
    old = folder / "week002.csv"
    st = os.stat(old)
    text = old.read_text()
    old.write_text(text.replace(",12\n", ",42\n"))
    os.utime(old, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(old).st_size == st.st_size and os.stat(old).st_mtime_ns == st.st_mtime_ns
    changed = pipe.poll("lab")
    assert reads == ["week002.csv"] and changed.observations == 1
    store = Store.in_dir(cfg.state_dir)
    try:
        assert _values(store, "ketamin")[(START + timedelta(weeks=2)).isoformat()] == 42.0
        assert store.q("SELECT COUNT(*) AS n FROM revisions")[0]["n"] == 1
    finally:
        store.close()

    # a file replaced by a copy of the same bytes (a new inode): read, found, nothing new
    reads.clear()
    copy = folder / "week003.tmp"
    copy.write_bytes((folder / "week003.csv").read_bytes())
    os.replace(copy, folder / "week003.csv")
    same = pipe.poll("lab")
    assert reads == ["week003.csv"] and same.documents == 0 and same.observations == 0
    reads.clear()
    assert pipe.poll("lab").skipped == 6 and reads == []  # its new version was kept


def test_a_file_whose_parse_fails_is_read_again_at_each_poll(tmp_path, reads, monkeypatch):
    """Only files that were ingested (or found so) are skipped by their version; one
    whose parser failed is read and reported again at the next poll (a file with
    problems in some rows is ingested, and skipped like any other)."""
    from feeds.counts import CountTableFeed

    real = CountTableFeed.parse

    def failing(self, raw, *, location, **kw):
        if location.endswith("broken.csv"):
            raise RuntimeError("parser failure")
        return real(self, raw, location=location, **kw)

    monkeypatch.setattr(CountTableFeed, "parse", failing)
    folder = tmp_path / "data"
    folder.mkdir()
    _week(folder, 0, 10)
    (folder / "broken.csv").write_text("period,substance,value\n")
    (folder / "odd.csv").write_text("period,substance,value\n2025-01-06,ketamin,x\n")
    cfg = load_config(write_service_config(tmp_path / "config.toml",
                                           sources=source("lab", str(folder))))
    pipe = Pipeline(cfg, clock=lambda: datetime(2025, 3, 1, tzinfo=UTC))
    assert pipe.poll("lab").problems == 2
    reads.clear()
    res = pipe.poll("lab")
    assert reads == ["broken.csv"] and res.problems == 1 and res.skipped == 2


def test_files_that_add_up_are_opened_once_and_once_more_when_switched_to(tmp_path, reads):
    """A folder read with each file giving its periods' whole value, then switched to
    ``files = "add"``: the next poll opens each file once more to learn its share (the
    values stay, nothing is revised); after that only new and changed files are opened,
    and a new file's share adds to its week."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(5):
        _week(folder, i, 10 + i)
    config = tmp_path / "config.toml"
    cfg = load_config(write_service_config(config, sources=source("lab", str(folder))))
    clock = lambda: datetime(2025, 3, 1, tzinfo=UTC)  # noqa: E731
    assert Pipeline(cfg, clock=clock).poll("lab").documents == 5
    cfg = load_config(write_service_config(
        config, sources=source("lab", str(folder)) + 'period = "week"\nfiles = "add"\n'))
    pipe = Pipeline(cfg, clock=clock)
    reads.clear()
    switched = pipe.poll("lab")
    assert sorted(reads) == [f"week{i:03d}.csv" for i in range(5)]
    assert switched.ok and switched.observations == 0
    reads.clear()
    assert pipe.poll("lab").skipped == 5 and reads == []
    (folder / "extra.csv").write_text(
        f"period,substance,value\n{(START + timedelta(days=2)).isoformat()},ketamin,5\n")
    added = pipe.poll("lab")
    assert reads == ["extra.csv"] and added.observations == 1
    store = Store.in_dir(cfg.state_dir)
    try:
        assert _values(store, "ketamin")[START.isoformat()] == 15.0
        assert _values(store, "heroin")[START.isoformat()] == 11.0
        assert store.q("SELECT COUNT(*) AS n FROM revisions")[0]["n"] == 1
    finally:
        store.close()


def test_a_row_problem_of_a_file_ends_when_the_file_is_read_again_without_it(tmp_path,
                                                                               capsys):
    """A lab drops a file a week; week 2's has a value mistyped ("1x"): `warnd status`
    lists its problem (the file and line). The lab fixes the file in place the
    week after, and that poll reads it again: the problem is no longer listed, and the
    week's value is stored. Before, it stayed listed as if it still were one."""
    folder = tmp_path / "data"
    folder.mkdir()
    cfg = load_config(write_service_config(tmp_path / "config.toml",
                                           sources=source("lab", str(folder))))
    seen = {}
    for i in range(5):
        p = _week(folder, i, 10 + i)
        if i == 2:
            p.write_text(p.read_text().replace(",12\n", ",1x\n"))
        if i == 3:
            _week(folder, 2, 12)  # fixed in place
        now = datetime.combine(START + timedelta(weeks=i, days=7), datetime.min.time(), UTC)
        assert Pipeline(cfg, clock=lambda now=now: now).poll("lab").ok
        seen[i] = _listed(cfg, capsys)
    assert seen == {0: [], 1: [], 2: [f"{folder}/week002.csv line 2: not a number: '1x'"],
                    3: [], 4: []}, seen
    store = Store.in_dir(cfg.state_dir)
    try:
        assert _values(store, "ketamin")[(START + timedelta(weeks=2)).isoformat()] == 12
    finally:
        store.close()


def test_a_row_problem_stays_its_files_when_a_file_of_the_same_name_is_read_again(
        tmp_path, capsys):
    """A lab keeps a file a year, each in a folder of its year (`lab/2025/counts.csv`,
    `lab/2026/counts.csv`, one source reading `lab/*/counts.csv`). Last year's file has a
    value mistyped on its line 3; this year's gets a row a week and is read again at each
    poll. Last year's problem stays listed, under its own file, until the lab fixes that
    file; this year's readings do not end it. (Before, line problems were known by the
    file's name only, so reading this year's file again ended last year's problem though
    its row was still wrong.)"""
    lab = tmp_path / "lab"
    old, new = lab / "2025" / "counts.csv", lab / "2026" / "counts.csv"
    old.parent.mkdir(parents=True)
    new.parent.mkdir()
    year = date(2025, 12, 1)
    old.write_text(f"period,substance,value\n{year},ketamin,10\n"
                   f"{year + timedelta(weeks=1)},ketamin,1x\n")
    cfg = load_config(write_service_config(
        tmp_path / "config.toml", sources=source("lab", str(lab / "*" / "counts.csv"))))
    rows = "period,substance,value\n"
    seen = {}
    for i in range(6):
        rows += f"{START + timedelta(weeks=52 + i)},ketamin,{20 + i}\n"
        new.write_text(rows)
        if i == 4:  # the lab fixes last year's file
            old.write_text(old.read_text().replace(",1x\n", ",11\n"))
        now = datetime.combine(START + timedelta(weeks=53 + i), datetime.min.time(), UTC)
        res = Pipeline(cfg, clock=lambda now=now: now).poll("lab")
        assert res.ok and res.documents == (2 if i in (0, 4) else 1), res
        seen[i] = _listed(cfg, capsys)
    broken = [f"{old} line 3: not a number: '1x'"]
    assert seen == {0: broken, 1: broken, 2: broken, 3: broken, 4: [], 5: []}, seen


def test_a_row_problem_stored_by_file_name_is_still_ended_by_its_own_file(tmp_path, capsys):
    """A store from before line problems named the file's location has them as
    `counts.csv line 3`. Such a problem is its file's that was read when it was last
    seen: another file of that name read later does not end it, and its own file read
    again without it does."""
    lab = tmp_path / "lab"
    old, new = lab / "2025" / "counts.csv", lab / "2026" / "counts.csv"
    old.parent.mkdir(parents=True)
    old.write_text(f"period,substance,value\n{START},ketamin,10\n"
                   f"{START + timedelta(weeks=1)},ketamin,1x\n")
    cfg = load_config(write_service_config(
        tmp_path / "config.toml", sources=source("lab", str(lab / "*" / "counts.csv"))))

    def poll(week: int) -> None:
        now = datetime.combine(START + timedelta(weeks=week), datetime.min.time(), UTC)
        assert Pipeline(cfg, clock=lambda: now).poll("lab").ok

    poll(2)
    store = Store.in_dir(cfg.state_dir)
    try:  # as the store had it
        with store.write() as db:
            db.execute("UPDATE problems SET location='counts.csv line 3'")
    finally:
        store.close()
    broken = ["counts.csv line 3: not a number: '1x'"]
    assert _listed(cfg, capsys) == broken
    new.parent.mkdir()
    new.write_text(f"period,substance,value\n{START + timedelta(weeks=2)},ketamin,20\n")
    poll(3)
    assert _listed(cfg, capsys) == broken
    old.write_text(old.read_text().replace(",1x\n", ",11\n"))
    poll(4)
    assert _listed(cfg, capsys) == []
