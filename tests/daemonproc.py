"""Run ``warnd run`` as a real subprocess and read its log lines with deadlines."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT


class DaemonProcess:
    def __init__(self, config: Path, *, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ("run",)) -> None:
        e = dict(os.environ)
        e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
        e.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warnd.cli", "--config", str(config), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=e,
            cwd=str(config.parent),
        )
        self.lines: list[str] = []
        self._eof = False
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 60.0) -> list[str]:
        """Block until ``count`` log lines containing ``text`` were seen."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [ln for ln in self.lines if text in ln]
            if len(hits) >= count:
                return hits
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {count}x {text!r} in log:\n" + "\n".join(self.lines[-40:]))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._eof = True
                raise AssertionError(f"daemon exited ({self.proc.wait()}) before {text!r}:\n"
                                     + "\n".join(self.lines[-40:]))
            self.lines.append(line)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        # drain what is left
        while True:
            try:
                line = self._q.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                self._eof = True
                break
            self.lines.append(line)
        return rc

    def kill(self) -> None:
        """Stop the process if still running and wait until its log pipe is closed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        while not self._eof:
            line = self._q.get()
            if line is None:
                self._eof = True
            else:
                self.lines.append(line)
