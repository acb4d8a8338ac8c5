#!/usr/bin/env python3
"""Check systemd/warnd.service and warnd-web.service: ``systemd-analyze verify`` and exposure.

``verify`` needs ExecStart's binary to exist, so it runs against a copy whose
ExecStart points at this checkout's ``warnd`` (``--warnd PATH``, default
the ``warnd`` beside the Python that runs this script). The exposure score (``security --offline=yes``) must not
exceed ``--max-exposure`` (default 2.0). Exit 0 when both pass.

``MemoryDenyWriteExecute=yes`` is checked for real where the kernel allows it
(Linux >= 6.3, ``prctl(PR_SET_MDWE)``, the same rule systemd enforces with
seccomp): one ``warnd run --once`` cycle over generated data, plus matplotlib
rendering a chart and the console's password hash (argon2) and server (uvicorn), runs with writable+executable memory refused; as root, also
under a private ``/proc`` mounted ``subset=pid,hidepid=invisible`` (what
``ProcSubset=pid`` and ``ProtectProc=invisible`` give the service).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "warnd.service"
UNITS = [UNIT, ROOT / "systemd" / "warnd-web.service"]


def exposure(unit: Path) -> float:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, check=False,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout + out.stderr)
    if not m:
        raise SystemExit(f"cannot read the exposure level:\n{out.stdout}{out.stderr}")
    return float(m.group(1))


def verify(unit: Path, warnd: Path) -> tuple[bool, str]:
    text = unit.read_text(encoding="utf-8")
    text, n = re.subn(r"^ExecStart=\S+", f"ExecStart={warnd}", text, flags=re.M)
    if n != 1:
        return False, "no ExecStart= line"
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / unit.name
        copy.write_text(text, encoding="utf-8")
        out = subprocess.run(["systemd-analyze", "verify", str(copy)],
                             capture_output=True, text=True, check=False)
    msg = (out.stdout + out.stderr).strip()
    return out.returncode == 0 and not msg, msg


MDWE_CHILD = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("unsupported"); sys.exit(3)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("not enforced"); sys.exit(3)
except OSError:
    pass
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(); ax.plot([1, 3, 2]); fig.savefig(sys.argv[2])
from argon2 import PasswordHasher
PasswordHasher().verify(PasswordHasher().hash("a password"), "a password")
import uvicorn, starlette.applications  # the console's server
from warnd.cli import main
sys.exit(main(["--config", sys.argv[1], "run", "--once"]))
"""


def check_mdwe() -> tuple[bool | None, str]:
    """(True, _) passed; (False, why) failed; (None, why) the kernel cannot enforce it."""
    sys.path.insert(0, str(ROOT))
    from tests.service_kit import child_env, counts_csv, notices_rss, write_service_config

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        (work / "c.csv").write_bytes(counts_csv(["ketamin", "heroin"], weeks=60,
                                                jump={"ketamin": 56}))
        (work / "n.xml").write_bytes(notices_rss(2, "ketamin"))
        cfg = write_service_config(work / "config.toml", sources=(
            '\n[[sources]]\nname = "lab"\nkind = "count_table"\nlocation = "c.csv"\n'
            'dimension = "use"\n[[sources]]\nname = "notices"\nkind = "overdosefare"\n'
            'location = "n.xml"\ndimension = "availability"\n'))
        cmd = [sys.executable, "-c", MDWE_CHILD, str(cfg), str(work / "c.png")]
        proc_note = ""
        if os.geteuid() == 0 and shutil.which("unshare"):
            # ProtectProc=invisible + ProcSubset=pid: a private /proc without cpuinfo,
            # meminfo, sys/...; only where a mount namespace can be made
            probe = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 "mount -t proc -o subset=pid,hidepid=invisible proc /proc && "
                 "test ! -e /proc/cpuinfo"], capture_output=True, check=False)
            if probe.returncode == 0:
                cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                       'mount -t proc -o subset=pid,hidepid=invisible proc /proc && '
                       'exec "$0" "$@"', *cmd]
                proc_note = " with /proc mounted subset=pid,hidepid=invisible"
        out = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=d,
                             check=False, timeout=300)
    if out.returncode == 3:
        return None, out.stdout.strip()
    if out.returncode != 0:
        return False, (out.stdout + out.stderr)[-2000:]
    return True, proc_note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unit", type=Path, action="append",
                    help="unit file (repeatable; default: both units in systemd/)")
    ap.add_argument("--warnd", type=Path, default=Path(sys.executable).parent / "warnd")
    ap.add_argument("--max-exposure", type=float, default=2.0)
    args = ap.parse_args()
    if shutil.which("systemd-analyze") is None:
        print("check-unit: systemd-analyze not found (apt-get install systemd)", file=sys.stderr)
        return 2
    ok = good = True
    for unit in args.unit or UNITS:
        v_ok, msg = verify(unit, args.warnd.resolve())
        print(f"verify {unit.name}: {'OK' if v_ok else 'FAILED'}" + (f"\n{msg}" if msg else ""))
        score = exposure(unit)
        s_ok = score <= args.max_exposure
        print(f"security exposure {unit.name}: {score:.1f} "
              f"({'OK' if s_ok else 'FAILED'}, limit {args.max_exposure:.1f})")
        ok, good = ok and v_ok, good and s_ok
    mdwe, why = check_mdwe()
    if mdwe is None:
        print(f"MemoryDenyWriteExecute: not checkable on this kernel ({why}; needs Linux >= 6.3)")
    else:
        print(f"MemoryDenyWriteExecute: one run --once cycle and a chart under PR_SET_MDWE"
              f"{why if mdwe else ''}: {'OK' if mdwe else 'FAILED'}"
              + ("" if mdwe else f"\n{why}"))
    return 0 if ok and good and mdwe is not False else 1


if __name__ == "__main__":
    sys.exit(main())
