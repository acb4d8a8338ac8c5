"""A large detect pass split by substance over worker processes (``general.detect_workers``):
real worker processes judging a real store, against the same week judged in one process."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

import warnd.pipeline
from tests.conftest import write_config
from tests.scenario import LAB_SOURCE, WEEKS, write_lab_csv
from warnd.config import load_config
from warnd.pipeline import Pipeline
from warnd.store import Store

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def _store_after_week(cfg) -> tuple[dict[str, list], list[tuple]]:
    """One cycle with the new weeks' data, then what the store holds of detection and
    the cycle's alerts as ``run --once`` lists them. Left out: the alerts' ids, which
    follow the order the processes committed in, and the episodes' ``updated_at``,
    the wall clock's time of the write."""
    got = Pipeline(cfg, clock=lambda: NOW).run_once()
    store = Store.in_dir(cfg.state_dir)

    def rows(sql: str, leave: str) -> list[tuple]:
        return [tuple(v for k, v in r.items() if k != leave) for r in store.q(sql)]

    try:
        held = {t: rows(f"SELECT * FROM {t} ORDER BY 1, 2", "updated_at" if t == "episodes"
                        else "") for t in ("series_states", "findings", "episodes", "series")}
        held["alerts"] = sorted(rows("SELECT * FROM alerts", "id"))
    finally:
        store.close()
    listed = [(a["substance"], a["kind"], a["decision"]) for a in got["alerts"]]
    return held, listed


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """Two substances' series judged up to the weeks before ketamin's rise; those weeks
    written. The config asks for two processes."""
    csv = tmp_path / "data" / "lab.csv"
    path = write_config(tmp_path, LAB_SOURCE.format(interval="1h"))
    path.write_text(path.read_text().replace("[general]\n", "[general]\ndetect_workers = 2\n", 1))
    cfg = load_config(path)
    assert cfg.general.detect_workers == 2
    write_lab_csv(csv, weeks=WEEKS)
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[: -2 * 8]) + "\n")  # two rows a week
    monkeypatch.setattr(warnd.pipeline, "TOGETHER_MAX", 0)  # not the small pass's shape
    Pipeline(cfg, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)).run_once()
    shutil.copytree(cfg.state_dir, tmp_path / "before")
    csv.write_text("\n".join(lines) + "\n")

    def again() -> None:
        shutil.rmtree(cfg.state_dir)
        shutil.copytree(tmp_path / "before", cfg.state_dir)

    return cfg, again


@pytest.fixture
def here(monkeypatch) -> list[str]:
    """The substances judged in this process (a worker's are not: it is another one)."""
    seen: list[str] = []
    real = Pipeline._detect_substance

    def spying(self, store, substance, *a, **kw):
        seen.append(substance)
        return real(self, store, substance, *a, **kw)

    monkeypatch.setattr(Pipeline, "_detect_substance", spying)
    return seen


def _one_process_first(lab, here, monkeypatch) -> tuple[dict[str, list], list[tuple]]:
    """The week judged in one process (what a split pass must leave); then the store
    back as before it, and every pass from now on large enough to split."""
    cfg, again = lab
    monkeypatch.setattr(warnd.pipeline, "PARALLEL_MIN", 10**9)
    one = _store_after_week(cfg)
    assert here == ["heroin", "ketamin"]
    again()
    here.clear()
    monkeypatch.setattr(warnd.pipeline, "PARALLEL_MIN", 1)
    return one


def test_a_split_pass_stores_what_one_process_stores(lab, here, monkeypatch):
    """The week judged with one substance in a worker process leaves the store one
    process leaves (states, findings, episodes, alerts, series), and the cycle lists
    the same alerts in the same order, the worker's among them."""
    cfg, _ = lab
    one, listed_one = _one_process_first(lab, here, monkeypatch)
    assert one["alerts"] and listed_one  # the rise: found and told
    split, listed_split = _store_after_week(cfg)
    assert here == ["heroin"]  # ketamin was judged in the worker process
    assert split == one
    assert listed_split == listed_one
    assert any(s == "ketamin" for s, _, _ in listed_one)  # the worker's alert came back


def _crash(config, now, keys):
    """A worker that dies without a word (as one killed by the kernel would)."""
    os._exit(3)


def test_a_worker_that_dies_leaves_its_substances_to_this_process(lab, here, monkeypatch,
                                                                   caplog):
    """A worker process that dies mid-pass commits nothing: its substances are still
    pending, judged in this process after the others, and the store ends as one
    process leaves it; the log says which substances and why."""
    cfg, _ = lab
    one, listed_one = _one_process_first(lab, here, monkeypatch)
    monkeypatch.setattr(warnd.pipeline, "_judge_elsewhere", _crash)
    with caplog.at_level("ERROR", logger="warnd.pipeline"):
        split, listed_split = _store_after_week(cfg)
    assert "substances ketamin: detection in a worker process failed" in caplog.text
    assert here == ["heroin", "ketamin"]  # ketamin after its worker died
    assert split == one
    assert listed_split == listed_one


def test_groups_balance_series_and_small_passes_stay_in_one_process(lab, tmp_path):
    """Substances go to the process with the fewest series, largest first; a pass under
    PARALLEL_MIN series, of one substance, or with one process configured is one group."""
    cfg, _ = lab
    p = Pipeline(cfg)
    sizes = {"a": 9000, "b": 7000, "c": 6000, "d": 2000, "e": 1000}
    by = {s: [("src", s, str(i), "count") for i in range(n)] for s, n in sizes.items()}
    groups = p._worker_groups(by)
    assert groups == [["a", "d", "e"], ["b", "c"]]  # 12,000 and 13,000 series
    assert p._worker_groups({"a": by["a"], "e": by["e"]}) == [["a", "e"]]  # under 20,000
    assert p._worker_groups({"a": by["a"] * 3}) == [["a"]]
    (tmp_path / "one").mkdir()
    one = load_config(write_config(tmp_path / "one", LAB_SOURCE.format(interval="1h")))
    assert one.general.detect_workers == 1  # the default
    assert Pipeline(one)._worker_groups(by) == [["a", "b", "c", "d", "e"]]


BLOCKER = '''
import os, threading

def block(config, now, keys):
    """A worker that says it runs, waits for a word on a FIFO and says it heard it,
    then waits for ever."""
    with open(os.environ["SPLIT_WORKER_PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
    with open(os.environ["SPLIT_WORKER_FIFO"]) as f:
        f.read(1)
    with open(os.environ["SPLIT_WORKER_PIDFILE"] + ".heard", "w") as f:
        f.write("heard")
    threading.Event().wait()
'''

PARENT = '''
import sys
import blocker
import warnd.pipeline as wp
from warnd.config import load_config

if __name__ == "__main__":  # a worker imports this module again (spawn), to no effect
    wp.PARALLEL_MIN, wp.TOGETHER_MAX = 1, 0
    wp._judge_elsewhere = blocker.block
    wp.Pipeline(load_config(sys.argv[1])).run_once()
'''


def _fifo_env(tmp_path, **extra: str) -> tuple[Path, dict[str, str]]:
    """A FIFO for a word to a worker, and the environment of a process whose modules
    are in ``tmp_path`` (its workers import them too) that names it."""
    fifo = tmp_path / "worker.fifo"
    os.mkfifo(fifo)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return fifo, {**os.environ, "SPLIT_WORKER_FIFO": str(fifo), **extra,
                  "PYTHONPATH": os.pathsep.join([str(tmp_path), root])}


def _gone(pid: int) -> bool:
    """The process has ended (a zombie nobody reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_worker_ends_with_its_parent_even_killed_and_nothing_is_lost(lab, tmp_path):
    """A real process whose split pass waits on its worker. SIGTERM to the worker (as
    systemd sends it to every process of a stopping service) leaves it working for its
    parent; SIGKILL to the parent ends the worker with it (it never goes on writing to
    the store alone), and the next pass judges what the worker had, so the rise is
    still told."""
    import signal
    import subprocess
    import sys

    from tests.servers import wait_for

    cfg, _ = lab
    (tmp_path / "blocker.py").write_text(BLOCKER)
    (tmp_path / "parent.py").write_text(PARENT)
    pidfile = tmp_path / "worker.pid"
    fifo, env = _fifo_env(tmp_path, SPLIT_WORKER_PIDFILE=str(pidfile))
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"),
                               str(tmp_path / "config.toml")], cwd=tmp_path, env=env)
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=60,
                 what="the worker process to start")
        worker = int(pidfile.read_text())
        os.kill(worker, signal.SIGTERM)
        # a word for the worker (read and write here, so this never blocks): only a
        # worker alive after SIGTERM reads it and says so
        word = os.open(fifo, os.O_RDWR)
        try:
            os.write(word, b"x")
            heard = tmp_path / "worker.pid.heard"
            wait_for(heard.exists, timeout=30, what="the worker to go on after SIGTERM")
        finally:
            os.close(word)
        assert not _gone(worker)
        parent.send_signal(signal.SIGKILL)
        assert parent.wait(timeout=30) == -signal.SIGKILL
        wait_for(lambda: _gone(worker), timeout=30, what="the worker to end with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
    store = Store.in_dir(cfg.state_dir)
    try:
        left = {k[1] for k in store.pending_series()}
    finally:
        store.close()
    assert left == {"ketamin"}  # the parent's own group committed; the worker's is pending
    sent = Pipeline(cfg, clock=lambda: NOW).detect()
    assert [(a["substance"], a["decision"]) for a in sent] == [("ketamin", "open")]


def test_worker_processes_refused_judges_the_pass_in_one_process(lab, here, monkeypatch,
                                                                 caplog):
    """Where no process can be started (a sandbox without semaphores or exec), the pass
    is judged in its own process, with the same store, and the log says why."""
    import concurrent.futures

    cfg, _ = lab
    one, listed_one = _one_process_first(lab, here, monkeypatch)

    def refused(*a, **kw):
        raise PermissionError(1, "Operation not permitted", "/dev/shm")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refused)
    with caplog.at_level("WARNING", logger="warnd.pipeline"):
        assert _store_after_week(cfg) == (one, listed_one)
    assert "detection in one process: worker processes cannot start: PermissionError" in (
        caplog.text)
    assert here == ["heroin", "ketamin"]


def test_check_config_warns_of_more_processes_than_cores(tmp_path, capsys, monkeypatch):
    """``check-config`` says when ``detect_workers`` asks for more processes than the
    machine runs at once, and accepts the config; as many as it has: no warning."""
    from warnd.cli import main

    p = write_config(tmp_path, "", name="c.toml")
    p.write_text(p.read_text().replace("[general]\n", "[general]\ndetect_workers = 3\n", 1))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert main(["check-config", str(p)]) == 0
    assert ("general.detect_workers = 3, but this machine runs 2 processes at once"
            in capsys.readouterr().err)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert main(["check-config", str(p)]) == 0
    assert "detect_workers" not in capsys.readouterr().err


RUN_ONCE = '''
import sys
import warnd.pipeline as wp
from warnd.cli import main

def judging(config, now, keys):
    """The worker says it judges, waits for a word on a FIFO, then judges."""
    import os
    print(f"worker {os.getpid()} judging", file=sys.stderr, flush=True)
    with open(os.environ["SPLIT_WORKER_FIFO"]) as f:
        f.read(1)
    return real(config, now, keys)

real = wp._judge_elsewhere
if __name__ == "__main__":  # a worker imports this module again (spawn), to no effect
    wp.PARALLEL_MIN, wp.TOGETHER_MAX = 1, 0
    wp._judge_elsewhere = judging
    sys.exit(main(["--config", sys.argv[1], "run", "--once", "--json"]))
'''


def _run_once_split(tmp_path):
    """`warnd run --once --json` as a real process in a process group of its own, as a
    terminal runs it, whose split pass's worker waits for a word on a FIFO once it
    says it judges; the process, its log, the worker's pid and the FIFO."""
    import re
    import subprocess
    import sys

    from tests.servers import wait_for

    (tmp_path / "run_once.py").write_text(RUN_ONCE)
    fifo, env = _fifo_env(tmp_path)
    log = tmp_path / "once.log"
    with log.open("wb") as err, (tmp_path / "once.json").open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(tmp_path / "run_once.py"),
                                 str(tmp_path / "config.toml")], cwd=tmp_path, env=env,
                                stdout=out, stderr=err, start_new_session=True)
    found: list[int] = []

    def worker_judging() -> bool:
        m = re.search(r"worker (\d+) judging", log.read_text())
        found.extend([int(m.group(1))] if m else [])
        assert proc.poll() is None, log.read_text()
        return bool(m)

    wait_for(worker_judging, timeout=120, what="the worker to judge")
    return proc, log, found[0], fifo


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_run_once_stopped_while_its_workers_judge_ends_their_pass(lab, tmp_path, sig, code):
    """A terminal's Ctrl-C sends SIGINT to the whole process group of `warnd run --once`,
    its detection's workers too; systemd's stop sends SIGTERM to them all. Either way the
    pass that had begun ends, the workers' part too, and the run says it stopped: exit
    130 or 143, ``stopped`` in the JSON with detection run and nothing left to judge,
    ``detect_failed`` empty, the rise told. Before, SIGINT ended the workers at once and
    their substances were judged again in the parent after the pass's own."""
    import json
    import signal

    from tests.servers import wait_for

    cfg, _ = lab
    proc, log, worker, fifo = _run_once_split(tmp_path)
    try:
        os.killpg(proc.pid, getattr(signal, sig))
        wait_for(lambda: f"{sig}: stopping" in log.read_text(), timeout=30,
                 what="the run to hear the signal")
        word = os.open(fifo, os.O_RDWR)  # read and write here, so this never blocks
        try:
            os.write(word, b"x")
            assert proc.wait(timeout=120) == code
        finally:
            os.close(word)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "Traceback" not in text and "in a worker process failed" not in text, text
    assert _gone(worker)
    doc = json.loads((tmp_path / "once.json").read_text())
    assert doc["stopped"] == {"signal": sig, "not_polled": [], "detection_run": True,
                              "series_waiting": 0, "deliveries_waiting": 0}
    assert doc["detect_failed"] == []
    assert [(a["substance"], a["decision"]) for a in doc["alerts"]] == [("ketamin", "open")]
    store = Store.in_dir(cfg.state_dir)
    try:
        assert store.pending_series() == {}
    finally:
        store.close()


def test_a_second_ctrl_c_stops_run_once_and_its_workers_at_once(lab, tmp_path):
    """Ctrl-C twice while the workers judge: the second ends the run at once (exit 130),
    its worker with it, without waiting for the worker's part; what was not committed
    waits for the next run, which tells the rise."""
    import signal

    from tests.servers import wait_for

    cfg, _ = lab
    proc, log, worker, _ = _run_once_split(tmp_path)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        wait_for(lambda: "SIGINT: stopping" in log.read_text(), timeout=30,
                 what="the run to hear the first Ctrl-C")
        assert not _gone(worker)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        wait_for(lambda: _gone(worker), timeout=30, what="the worker to end with the run")
    finally:
        if proc.poll() is None:
            proc.kill()
    sent = Pipeline(cfg, clock=lambda: NOW).detect()
    assert [(a["substance"], a["decision"]) for a in sent] == [("ketamin", "open")]
