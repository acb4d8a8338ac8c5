"""warnd asks glibc to reuse freed blocks of the sizes the detectors' temporary arrays
have: making and freeing such arrays over and over faults their pages in once, not
for every array (counted by the kernel, not timed)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import io, json, resource, sys
from contextlib import redirect_stderr
import numpy as np
if sys.argv[1] == "cli":  # what every warnd command does first
    from warnd.cli import main
    with redirect_stderr(io.StringIO()):
        main(["backtest"])  # refused at once: no --observations
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
for _ in range(50):
    # a block of baseline windows: its design, weights and products alive together
    # (3.9 MB each), then freed, as one fit after another does
    block = [np.ones((512, 160, 6)) * k for k in range(6)]
    del block
print(json.dumps(faults() - before))
"""


def _faults(how: str) -> int:
    r = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return int(json.loads(r.stdout))


def test_a_warnd_command_reuses_freed_array_blocks() -> None:
    from warnd.allocator import keep_freed_blocks

    assert keep_freed_blocks() is True  # this machine's C library is glibc
    plain, tuned = _faults("plain"), _faults("cli")
    # plain: glibc gives the freed 23 MB back each time (more than twice its largest
    # block), so every block's pages (about 950 each) fault in again
    assert plain > 50 * 6 * 900 * 0.5
    assert tuned * 20 < plain, (plain, tuned)


RELEASE = """
import json
import numpy as np
from warnd.allocator import keep_freed_blocks, release_freed_blocks
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
keep_freed_blocks()
base = rss_kib()
block = [np.ones((512, 160, 6)) * k for k in range(6)]  # 23 MB
del block
kept = rss_kib()
release_freed_blocks()
print(json.dumps([base, kept, rss_kib()]))
"""


def test_what_a_pass_freed_is_given_back_after_it() -> None:
    """The freed blocks the heap keeps for reuse (up to 32 MiB) are given back when
    the daemon's detect pass ends, so the idle process does not hold them."""
    r = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    base, kept, released = json.loads(r.stdout)
    assert kept - base > 15 * 1024  # kept for reuse after the arrays were freed
    assert released - base < 5 * 1024  # and given back
