"""Build ``benchmarks/data/tcpd.json`` from a copy of the Turing Change Point Dataset.

Run: ``python -m benchmarks.tcpd_import GIT_DIR`` where ``GIT_DIR`` is a git directory of
https://github.com/alan-turing-institute/TCPD (a clone's ``.git`` or a bare mirror); the
newest commit is read with ``git show``, nothing is downloaded.

Kept: every univariate series whose data file is in the repository (its README states
that it may be redistributed), with the annotations of ``annotations.json`` (the same
file as TCPDBench ``analysis/annotations/annotations.json``). Left out: multivariate
series and the series the repository does not redistribute (it downloads them from their
publishers because their licences are unclear or forbid it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "data" / "tcpd.json"

# Licence as stated in each dataset's README (or LICENSE file) in the TCPD repository.
LICENCES = {
    "bank": "MIT (c) 2019 G.J.J. van den Burg",
    "brent_spot": "public domain (U.S. Energy Information Administration)",
    "businv": "U.S. Census Bureau, redistribution permitted",
    "centralia": "U.S. census counts (public domain), via Wikipedia",
    "children_per_woman": "CC BY 4.0, free data from www.gapminder.org",
    "co2_canada": "CC BY 4.0, free data from www.gapminder.org",
    "construction": "U.S. Census Bureau, redistribution permitted",
    "debt_ireland": "euro area statistics (ECB/Eurostat), redistribution with source quoted",
    "gdp_argentina": "CC BY 4.0, World Bank",
    "gdp_croatia": "CC BY 4.0, World Bank",
    "gdp_iran": "CC BY 4.0, World Bank",
    "gdp_japan": "CC BY 4.0, World Bank",
    "global_co2": "CC BY 3.0, Meinshausen et al. 2017, Geosci. Model Dev. 10:2057",
    "homeruns": "CC BY-SA 3.0, Baseball Databank (this series only)",
    "jfk_passengers": "CC0, Port Authority of NY & NJ via New York State",
    "lga_passengers": "CC0, Port Authority of NY & NJ via New York State",
    "nile": "GPL-2 (R datasets 'Nile', this series only); measurements of Cobb 1978",
    "ozone": "public domain (Hegglin et al. 2014), via Our World in Data (CC BY 4.0)",
    "quality_control_1": "MIT (c) 2020 The Alan Turing Institute (synthetic)",
    "quality_control_2": "MIT (c) 2020 The Alan Turing Institute (synthetic)",
    "quality_control_3": "MIT (c) 2020 The Alan Turing Institute (synthetic)",
    "quality_control_4": "MIT (c) 2020 The Alan Turing Institute (synthetic)",
    "quality_control_5": "MIT (c) 2020 The Alan Turing Institute (synthetic)",
    "rail_lines": "CC BY 4.0, World Bank",
    "seatbelts": "GPL-2 (R datasets 'UKDriverDeaths', this series only)",
    "shanghai_license": "CC0 (Kaggle)",
    "uk_coal_employ": "Open Government Licence v3.0, UK Department for Business",
    "unemployment_nl": "Statistics Netherlands (CBS), redistribution permitted",
    "us_population": "U.S. Census Bureau, redistribution permitted",
    "usd_isk": "(c) European Union (Eurostat), redistribution permitted",
    "well_log": "MIT (bocpdms repository); O Ruanaidh & Fitzgerald 1996",
}


def _show(git_dir: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"HEAD:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def build(git_dir: str) -> dict:
    names = subprocess.run(
        ["git", "--git-dir", git_dir, "ls-tree", "--name-only", "HEAD", "datasets/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    annotations = json.loads(_show(git_dir, "annotations.json"))
    commit = subprocess.run(
        ["git", "--git-dir", git_dir, "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    series: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name in (n.removeprefix("datasets/") for n in names):
        try:
            raw = json.loads(_show(git_dir, f"datasets/{name}/{name}.json"))
        except subprocess.CalledProcessError:
            skipped[name] = "not redistributed by TCPD (downloaded from its publisher)"
            continue
        if raw["n_dim"] != 1:
            skipped[name] = f"multivariate ({raw['n_dim']} dimensions)"
            continue
        if name not in LICENCES:
            raise SystemExit(f"{name}: no licence note recorded; check its README first")
        time = raw.get("time") or {}
        item = {
            "longname": raw.get("longname", name),
            "licence": LICENCES[name],
            "values": raw["series"][0]["raw"],
            "annotations": annotations[name],
        }
        if time.get("format") and time.get("raw"):
            item["time_format"] = time["format"]
            item["time"] = time["raw"]
        series[name] = item
    return {
        "about": (
            "Univariate series of the Turing Change Point Dataset (van den Burg & Williams "
            "2020, arXiv:2003.06222, https://github.com/alan-turing-institute/TCPD, commit "
            f"{commit}) with their human annotations (annotations.json, the same as "
            "TCPDBench analysis/annotations/annotations.json), keyed by annotator id. "
            "Indices are 0-based positions where a new segment starts; null is a missing "
            "value. Each series keeps the licence its publisher gave (field 'licence'); "
            "series marked GPL-2 or CC BY-SA are redistributed under those licences, not "
            "under this project's. quality_control_* are the synthetic control series "
            "TCPD's annotators were checked on."
        ),
        "skipped": skipped,
        "series": series,
    }


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m benchmarks.tcpd_import GIT_DIR")
    data = build(sys.argv[1])
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"{len(data['series'])} series written to {OUT}; skipped: {data['skipped']}")


if __name__ == "__main__":
    main()
