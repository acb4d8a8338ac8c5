"""A folder that gets one file a day, summed into weeks (``files = "add"``): an ambulance
service's daily call-out export, day by day through the real pipeline (a folder, a real
store, detection and the messages decided).

Before, each file's weekly sum was stored as the week's value and the next day's file
was taken for a revision of it: a week held only its last day (a seventh of the
call-outs), with a revision recorded every day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from hashlib import sha256
from pathlib import Path

import numpy as np

from tests.alerting_env import make_config, target
from warnd.cli import EX_CONFIG, main
from warnd.pipeline import Pipeline
from warnd.store import Shares, Store

MAIL = target("mail", "mailto://127.0.0.1:1?from=a@example.org&to=o@example.org")
HISTORY_START = date(2024, 3, 4)  # a Monday
DAILY_START = HISTORY_START + timedelta(weeks=104)  # the first day of the daily files


def _source(aggregate: str = "sum", files: str | None = "add") -> str:
    return (
        '\n[[sources]]\nname = "amk"\nkind = "count_table"\nlocation = "amk/"\n'
        'interval = "1d"\ndimension = "use"\n'
        'columns = { period = "dato", substance = "rusmiddel", value = "utrykninger" }\n'
        f'period = "week"\naggregate = "{aggregate}"\n'
        + (f'files = "{files}"\n' if files else "")
    )


def _config(tmp_path: Path, period: str = "week", **kw):
    (tmp_path / "amk").mkdir(exist_ok=True)
    return make_config(tmp_path, MAIL, sources=_source(**kw).replace(
        'period = "week"', f'period = "{period}"'))


def _write(folder: Path, name: str, rows: list[tuple[date, float]]) -> Path:
    p = folder / name
    p.write_text("dato,rusmiddel,utrykninger\n"
                 + "".join(f"{d.isoformat()},ketamin,{v:g}\n" for d, v in rows))
    return p


def _weeks(cfg) -> dict[date, float]:
    store = Store.in_dir(cfg.state_dir)
    try:
        return {date.fromisoformat(r["period"]): r["value"] for r in store.q(
            "SELECT period, value FROM observations WHERE source = 'amk' ORDER BY period")}
    finally:
        store.close()


def _revised(cfg) -> list[str]:
    store = Store.in_dir(cfg.state_dir)
    try:
        return [r["period"] for r in store.q("SELECT period FROM revisions ORDER BY id")]
    finally:
        store.close()


def _day(cfg, day: date) -> list[str]:
    """The morning after ``day``: its file has been dropped; poll, judge, tell."""
    pipe = Pipeline(cfg, clock=lambda: datetime.combine(day + timedelta(days=1),
                                                        datetime.min.time(), UTC)
                    + timedelta(hours=7))
    assert pipe.poll("amk").ok
    return [a["decision"] for a in pipe.detect() if a["kind"] == "trend"]


def test_a_week_of_daily_files_is_stored_as_the_sum_of_its_days(tmp_path):
    """Two years of weekly totals (one export), then one file a day: each week's value
    is the sum of its seven days, stored once the week is over, never revised; a steady
    level tells nothing, and a rise in the daily counts is told once."""
    cfg = _config(tmp_path)
    folder = tmp_path / "amk"
    rng = np.random.default_rng(5)
    _write(folder, "amk_2024-2026.csv",
           [(HISTORY_START + timedelta(weeks=w), float(rng.poisson(70))) for w in range(104)])
    told: list[str] = []
    daily: dict[date, float] = {}
    for i in range(5 * 7):
        day = DAILY_START + timedelta(days=i)
        daily[day] = float(rng.poisson(10 if i < 3 * 7 else 30))
        _write(folder, f"amk_{day.isoformat()}.csv", [(day, daily[day])])
        told += _day(cfg, day)
        weeks = _weeks(cfg)
        monday = day - timedelta(days=day.weekday())
        if day.weekday() < 6:  # a week still being filled is not stored yet
            assert monday not in weeks
        else:
            assert weeks[monday] == sum(daily[monday + timedelta(days=k)] for k in range(7))
        if i == 3 * 7 - 1:
            assert told == []  # three weeks at the usual level (a seventh of it before)
    assert len(weeks) == 104 + 5
    assert _revised(cfg) == []
    assert told == ["open"]


def test_a_daily_file_rewritten_replaces_its_own_share_and_one_removed_keeps_it(tmp_path):
    """A day's file corrected in place changes the week by the difference (one revision);
    one emptied while it is rewritten takes nothing away meanwhile; a new file for a past
    day adds its share; a file taken out of the folder (an archived day) takes nothing
    away."""
    cfg = _config(tmp_path)
    folder = tmp_path / "amk"
    monday = DAILY_START
    files = [_write(folder, f"amk_{monday + timedelta(days=k)}.csv",
                    [(monday + timedelta(days=k), 10.0 + k)]) for k in range(6)]
    sunday = monday + timedelta(days=6)
    _write(folder, f"amk_{sunday}.csv", [(sunday, 20.0)])
    _day(cfg, sunday)
    assert _weeks(cfg) == {monday: 10 + 11 + 12 + 13 + 14 + 15 + 20}
    files[3].write_text("")  # being rewritten (emptied first): it gives nothing, takes nothing
    _day(cfg, sunday)
    assert _weeks(cfg) == {monday: 95.0}
    _write(folder, files[2].name, [(monday + timedelta(days=2), 2.0)])  # 12 corrected to 2
    _write(folder, files[3].name, [(monday + timedelta(days=3), 13.0)])
    _day(cfg, sunday + timedelta(days=1))
    assert _weeks(cfg) == {monday: 85.0}
    # a second export of Tuesday's late call-outs, under a name of its own
    _write(folder, "amk_2026-03-03_etterregistrert.csv", [(monday + timedelta(days=1), 4.0)])
    files[0].unlink()  # Monday's file archived elsewhere
    _day(cfg, sunday + timedelta(days=2))
    assert _weeks(cfg) == {monday: 89.0}
    assert _revised(cfg) == [monday.isoformat()] * 2


def test_a_mean_over_daily_files_is_weighted_by_their_samples(tmp_path):
    """Wastewater samples, several a day in some files: the week's mean is over all of
    its samples, not a mean of each file's mean."""
    cfg = _config(tmp_path, aggregate="mean")
    folder = tmp_path / "amk"
    monday = DAILY_START
    _write(folder, "a.csv", [(monday, 10.0), (monday, 10.0), (monday, 10.0)])
    _write(folder, "b.csv", [(monday + timedelta(days=1), 30.0)])
    _day(cfg, monday + timedelta(days=6))
    assert _weeks(cfg) == {monday: 15.0}


def test_correction_files_still_replace_a_period_by_default(tmp_path):
    """Without ``files = "add"`` a later file gives a period's whole value: the lab's
    correction file replaces the week, kept as a revision, as before."""
    cfg = _config(tmp_path, files=None)
    folder = tmp_path / "amk"
    monday = DAILY_START
    _write(folder, "lab_2026-03.csv", [(monday, 40.0)])
    _write(folder, "lab_2026-03_revisjon.csv", [(monday, 44.0)])
    _day(cfg, monday + timedelta(days=6))
    assert _weeks(cfg) == {monday: 44.0}
    assert _revised(cfg) == [monday.isoformat()]


def _two_weeks(cfg, folder: Path) -> tuple[date, dict[date, float]]:
    """Two weeks of daily files, both weeks stored as the sums of their days."""
    monday = DAILY_START
    for k in range(14):
        day = monday + timedelta(days=k)
        _write(folder, f"amk_{day}.csv", [(day, 10.0 + k)])
    _day(cfg, monday + timedelta(days=13))
    weeks = {monday: float(sum(range(10, 17))), monday + timedelta(weeks=1): float(
        sum(range(17, 24)))}
    assert _weeks(cfg) == weeks
    return monday, weeks


def test_switching_files_back_to_replace_reads_no_file_again(tmp_path, capsys):
    """A source switched from ``add`` back to ``replace`` (a restart on the edited
    config) reads none of its files again, and switched to ``add`` once more neither:
    its weeks keep the sums of their days. Before, every file was read again in
    ``replace`` mode, each day's file taken for its week's whole value: each week ended
    as its last day, with seven revisions, and switched back to ``add`` it was revised
    once more to its sum."""
    cfg = _config(tmp_path)
    monday, weeks = _two_weeks(cfg, tmp_path / "amk")
    cfg = _config(tmp_path, files="replace")
    capsys.readouterr()
    assert main(["check-config", str(cfg.path)]) == 0
    assert "amk" not in capsys.readouterr().err
    _day(cfg, monday + timedelta(days=14))
    assert _weeks(cfg) == weeks
    cfg = _config(tmp_path, files="add")
    assert main(["check-config", str(cfg.path)]) == 0
    assert ("warning: sources.amk: its files now add up; each of them is read once more at "
            "its next poll to learn its share") in capsys.readouterr().err
    _day(cfg, monday + timedelta(days=15))
    assert _weeks(cfg) == weeks
    assert _revised(cfg) == []


def test_another_period_for_files_that_add_up_is_refused(tmp_path, capsys):
    """A source whose files' shares are kept by week, given ``period = "month"``, is not
    polled (its stored weeks and the new months would be one series) and check-config
    says why; with its period put back it is polled as before. Before, the months were
    stored next to the weeks in one series."""
    cfg = _config(tmp_path)
    monday, weeks = _two_weeks(cfg, tmp_path / "amk")
    cfg = _config(tmp_path, period="month")
    capsys.readouterr()
    assert main(["check-config", str(cfg.path)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert ("sources.amk: period = 'month', but the shares its files gave were kept by "
            "'week'") in err
    later = date(2026, 4, 2)  # March has ended: its month would be stored
    pipe = Pipeline(cfg, clock=lambda: datetime.combine(later, datetime.min.time(), UTC))
    res = pipe.poll("amk")
    assert not res.ok and "put period = 'week' back" in (res.error or "")
    assert _weeks(cfg) == weeks
    cfg = _config(tmp_path)
    assert main(["check-config", str(cfg.path)]) == 0
    _day(cfg, later)
    assert _weeks(cfg) == weeks
    assert _revised(cfg) == []


def test_an_aggregate_changed_takes_the_share_of_a_file_taken_out_as_the_new_one(tmp_path,
                                                                                 capsys):
    """Wastewater samples in daily files, Monday's archived once its week is stored; the
    operator turns ``aggregate`` from ``sum`` to ``mean``, then the source to
    ``replace`` and ``sum``, then back to ``add``: the archived file's share is taken as
    the aggregate in force each time (a file's sum is its mean times its samples), and
    switched back to adding up the week is the sum of both files' shares again. Before,
    its share kept as a sum was read as a mean (the week's mean was 30, not 20), and a
    week given a whole value in ``replace`` mode kept it."""
    cfg = _config(tmp_path)
    folder = tmp_path / "amk"
    monday = DAILY_START
    _write(folder, "a.csv", [(monday, 10.0), (monday, 20.0)])
    _write(folder, "b.csv", [(monday + timedelta(days=1), 30.0)])
    sunday = monday + timedelta(days=6)
    _day(cfg, sunday)
    assert _weeks(cfg) == {monday: 60.0}
    (folder / "a.csv").unlink()
    capsys.readouterr()
    assert main(["check-config", str(_config(tmp_path, aggregate="mean").path)]) == 0
    assert "read again" not in capsys.readouterr().err
    mean = Pipeline(_config(tmp_path, aggregate="mean"), clock=lambda: datetime.combine(
        sunday + timedelta(days=2), datetime.min.time(), UTC)).poll("amk")
    assert mean.ok and mean.documents == 0  # the shares kept are taken as means
    assert _weeks(cfg) == {monday: 20.0}  # (10 + 20 + 30) / 3
    _day(_config(tmp_path, files="replace"), sunday + timedelta(days=2))
    assert _weeks(cfg) == {monday: 30.0}  # b.csv read again, its whole value
    _day(_config(tmp_path), sunday + timedelta(days=3))
    assert _weeks(cfg) == {monday: 60.0}


def _poll(cfg, day: date):
    """The poll of the morning after ``day``, and the messages it decided."""
    pipe = Pipeline(cfg, clock=lambda: datetime.combine(day + timedelta(days=1),
                                                        datetime.min.time(), UTC)
                    + timedelta(hours=7))
    res = pipe.poll("amk")
    assert res.ok
    pipe.detect()
    return res


def _problems(cfg) -> dict[str, str]:
    store = Store.in_dir(cfg.state_dir)
    try:
        return {r["location"].rsplit("/", 1)[-1]: r["message"] for r in store.q(
            "SELECT location, message FROM problems WHERE source = 'amk' ORDER BY id")}
    finally:
        store.close()


def test_a_copy_of_a_days_file_is_counted_once_and_said_so(tmp_path, caplog, capsys):
    """A day's file saved twice by a browser (``amk_… (1).csv``, read before the original,
    whose name sorts after it) and one dropped again by a transfer retried under a
    timestamped name once its week was stored: each day is counted once, the week is not
    revised, and the poll, its log and ``warnd status`` name both files. Before, a copy
    was one more share: its day counted twice, and a week of daily call-outs told a rise
    that was not there."""
    cfg = _config(tmp_path)
    folder = tmp_path / "amk"
    monday = DAILY_START
    days = [monday + timedelta(days=k) for k in range(7)]
    for k, day in enumerate(days):
        _write(folder, f"amk_{day}.csv", [(day, 10.0 + k)])
    (folder / f"amk_{days[1]} (1).csv").write_bytes((folder / f"amk_{days[1]}.csv").read_bytes())
    res = _poll(cfg, days[6])
    week = float(sum(range(10, 17)))
    assert _weeks(cfg) == {monday: week}
    assert res.documents == 8 and res.problems == 1
    assert _problems(cfg) == {f"amk_{days[1]}.csv": f"a copy of amk_{days[1]} (1).csv (the "
                              "same bytes): counted once, not again"}
    retried = folder / f"amk_{days[2]}_20260306T070112.csv"
    retried.write_bytes((folder / f"amk_{days[2]}.csv").read_bytes())
    caplog.clear()
    res = _poll(cfg, days[6] + timedelta(days=1))
    assert _weeks(cfg) == {monday: week}
    assert _revised(cfg) == []
    said = f"a copy of amk_{days[2]}.csv (the same bytes): counted once, not again"
    assert res.documents == 1 and res.problems == 1
    assert f"source=amk problem at {retried}: {said}" in caplog.text
    assert _problems(cfg)[retried.name] == said
    res = _poll(cfg, days[6] + timedelta(days=2))  # found a copy once, not read again
    assert res.documents == 0 and res.problems == 0
    capsys.readouterr()
    main(["--config", str(cfg.path), "status"])
    # on the local clock, when it was seen: the poll that read the copy, not the later one
    seen = f"{days[6] + timedelta(days=2)} 08:00 CET"
    assert f"problem (seen {seen}): {retried}: {said}" in capsys.readouterr().out


def test_a_day_corrected_after_its_copy_was_found_is_counted_once_corrected(tmp_path):
    """A day's file and its copy are one share, whichever was read first: the day
    corrected in place is its corrected value once, the stale copy left in the folder
    (and a further copy of its old bytes) adding nothing; the original taken out of the
    folder leaves the share to its copy, which neither drops nor doubles, and the copy
    written again with a correction replaces it; a correction taken back (the file
    given its copies' bytes again) is the day's share again, not a copy. Before, each
    copy added its day once more, and a corrected day was counted both corrected and as
    it was."""
    cfg = _config(tmp_path)
    folder = tmp_path / "amk"
    monday = DAILY_START
    days = [monday + timedelta(days=k) for k in range(7)]
    files = [_write(folder, f"amk_{day}.csv", [(day, 10.0 + k)]) for k, day in enumerate(days)]
    # Tuesday's copy is read first (its name sorts before the original's), Wednesday's
    # retried transfer after it
    tuesday = folder / f"amk_{days[1]} (1).csv"
    tuesday.write_bytes(files[1].read_bytes())
    wednesday = folder / f"amk_{days[2]}_retry.csv"
    wednesday.write_bytes(files[2].read_bytes())
    _poll(cfg, days[6])
    week = float(sum(range(10, 17)))
    assert _weeks(cfg) == {monday: week}
    monday_copy = folder / f"amk_{days[0]} (1).csv"  # Monday's copy comes a day later
    monday_copy.write_bytes(files[0].read_bytes())
    _poll(cfg, days[6] + timedelta(days=1))
    assert _weeks(cfg) == {monday: week}
    # Monday (read before its copy) and Tuesday (read after its copy) corrected in place
    _write(folder, files[0].name, [(days[0], 5.0)])
    _write(folder, files[1].name, [(days[1], 6.0)])
    _poll(cfg, days[6] + timedelta(days=2))
    assert _weeks(cfg) == {monday: week - 5 - 5}
    assert _revised(cfg) == [monday.isoformat()]
    # one more copy of Monday's old bytes: a copy of the stale copy, counted nowhere
    (folder / f"amk_{days[0]} (2).csv").write_bytes(monday_copy.read_bytes())
    files[2].unlink()  # Wednesday's original archived: its copy stays
    wednesday.write_bytes(wednesday.read_bytes())  # and is touched (read again)
    res = _poll(cfg, days[6] + timedelta(days=3))
    assert _weeks(cfg) == {monday: week - 10}
    assert res.documents == 1 and res.problems == 1
    assert _problems(cfg)[f"amk_{days[0]} (2).csv"] == (
        f"a copy of amk_{days[0]} (1).csv (the same bytes), which stands for "
        f"amk_{days[0]}.csv's share: counted once, not again")
    _write(folder, wednesday.name, [(days[2], 2.0)])  # the copy corrected: 12 -> 2
    _poll(cfg, days[6] + timedelta(days=4))
    assert _weeks(cfg) == {monday: week - 20}
    assert _revised(cfg) == [monday.isoformat()] * 2
    # Monday's correction taken back: its file has its copies' bytes again, its own share
    files[0].write_bytes(monday_copy.read_bytes())
    _poll(cfg, days[6] + timedelta(days=5))
    assert _weeks(cfg) == {monday: week - 15}


def test_a_copy_counted_twice_before_is_counted_once_at_the_next_poll(tmp_path):
    """A store in which a copy of a day's file was kept as a share of its own (as every
    copy was before copies were found): the next poll makes the two one share, the week
    is stored again with the day once (a revision) and the copy is named as a problem;
    the poll after it changes nothing."""
    cfg = _config(tmp_path)
    folder = tmp_path / "amk"
    monday = DAILY_START
    days = [monday + timedelta(days=k) for k in range(7)]
    files = [_write(folder, f"amk_{day}.csv", [(day, 10.0 + k)]) for k, day in enumerate(days)]
    _poll(cfg, days[6])
    week = float(sum(range(10, 17)))
    copy = folder / f"amk_{days[1]}-copy.csv"
    copy.write_bytes(files[1].read_bytes())
    # the copy's share kept as the store kept any file's share before
    at = datetime.combine(days[6] + timedelta(days=1), datetime.min.time(), UTC) + timedelta(
        hours=12)  # after the poll of that morning
    pipe = Pipeline(cfg, clock=lambda: at)
    parsed = pipe.build_feed("amk").parse(copy.read_bytes(), location=str(copy),
                                          fetched_at=at)
    store = Store.in_dir(cfg.state_dir)
    try:
        shares = Shares("sum", "week")
        obs = pipe._prepare_observations(store, cfg.source("amk"), parsed.observations)
        store.ingest("amk", location=str(copy), sha256=sha256(copy.read_bytes()).hexdigest(),
                     observations=obs, items=(), problems=(), now=at, shares=shares)
        store.settle_shares("amk", shares, now=at)
    finally:
        store.close()
    assert _weeks(cfg) == {monday: week + 11}
    res = _poll(cfg, days[6] + timedelta(days=2))
    assert _weeks(cfg) == {monday: week}
    assert _revised(cfg) == [monday.isoformat()] * 2
    assert res.problems == 1
    assert _problems(cfg)[copy.name] == (
        f"a copy of amk_{days[1]}.csv (the same bytes), counted as a share of its own "
        "before: counted once from now on")
    res = _poll(cfg, days[6] + timedelta(days=3))
    assert res.problems == 0 and res.documents == 0
    assert _weeks(cfg) == {monday: week}
    _write(folder, copy.name, [(days[1], 1.0)])  # the copy written again is the day's file
    _poll(cfg, days[6] + timedelta(days=4))
    assert _weeks(cfg) == {monday: week - 10}
