"""Generate the sample data in ``examples/data`` and ``examples/observations.csv``.

A made-up but realistic scenario shaped like the spring 2026 Føre Var findings for Bergen
(October 2025 – March 2026 against the half year before): crack cocaine and ketamine use
rise strongly, ramping up over about ten weeks from late October / early November 2025
to two to three times their level, seen by several independent sources; heroin and
Xanor (alprazolam) stay stable. Every series has noise, seasonality and overdispersion.

Weekly data run from 2021-01-04 to the week ending 2026-03-29. The output is fully
determined by the seed: running this again rewrites identical files.

    python examples/generate.py            # writes examples/data and examples/observations.csv
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

SEED = 20260329
HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
FIRST_WEEK = date(2021, 1, 4)
LAST_WEEK = date(2026, 3, 23)  # the ISO week ending Sunday 2026-03-29
WEEKS = [FIRST_WEEK + timedelta(weeks=i) for i in range((LAST_WEEK - FIRST_WEEK).days // 7 + 1)]
SUBSTANCES = ("heroin", "kokain", "ketamin", "xanor")


@dataclass(frozen=True)
class Rise:
    start: date
    weeks: int
    factor: float


#: The scenario: which substance rises, from when, how fast and how far.
RISES = {
    "kokain": Rise(date(2025, 10, 20), 10, 2.6),
    "ketamin": Rise(date(2025, 11, 3), 10, 2.3),
}


def level(substance: str, day: date, *, strength: float = 1.0) -> float:
    """Multiplier of the scenario on ``day``: 1 before the rise, ``factor`` after the ramp.

    ``strength`` scales the rise for sources that see it weaker (1 = full, 0 = none).
    """
    rise = RISES.get(substance)
    if rise is None or day < rise.start:
        return 1.0
    progress = min(1.0, (day - rise.start).days / (7 * rise.weeks))
    return 1.0 + (rise.factor - 1.0) * progress * strength


def season(day: date, amplitude: float, peak_week: int = 26) -> float:
    week = day.isocalendar()[1]
    return 1.0 + amplitude * np.cos(2 * np.pi * (week - peak_week) / 52.0)


def negbin(rng: np.random.Generator, mean: float, k: float) -> int:
    """Overdispersed count: negative binomial with mean ``mean`` and size ``k``."""
    mean = max(mean, 1e-6)
    return int(rng.negative_binomial(k, k / (k + mean)))


def sunday_before(monday: date) -> date:
    return monday - timedelta(days=1)


class Flat:
    """Rows of ``examples/observations.csv``: the scenario as one flat table."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(
        self,
        day: date,
        substance: str,
        source: str,
        value: float,
        denominator: float | None,
        region: str,
        dimension: str,
        metric: str = "count",
    ) -> None:
        self.rows.append(
            (
                day.isoformat(),
                substance,
                source,
                _num(value),
                "" if denominator is None else _num(denominator),
                region,
                dimension,
                metric,
            )
        )

    def write(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(
                ["date", "substance", "source", "value", "denominator", "region", "dimension",
                 "metric"]
            )
            w.writerows(sorted(self.rows))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3f}".rstrip("0")


def _comma(v: float, digits: int = 1) -> str:
    return f"{v:.{digits}f}".replace(".", ",")


# -- media ---------------------------------------------------------------------------

PLACES = ("Bergen", "Sandviken", "Åsane", "Fana", "Laksevåg", "Vestland", "Os", "Askøy", "sentrum")
HEADLINES = {
    "heroin": [
        ("Heroin beslaglagt i leilighet i {p}", "Politiet fant heroin og kontanter."),
        ("Flere heroinbrukere får LAR-behandling", "Ventetiden for behandling er kortere enn før."),
        ("Mann dømt for salg av heroin i {p}", "Han solgte heroin over flere måneder."),
        (
            "Overdosedødsfall: heroin og benzodiazepiner",
            "Kombinasjonen er farlig, advarer fagfolk.",
        ),
        ("Politiet: minus selges åpent ved Nygårdsparken", "Heroin omsettes fortsatt i området."),
    ],
    "kokain": [
        ("Crackkokain røykes åpent i {p}", "Brukerrommet melder om flere som røyker crack."),
        ("Kokainbeslag på Flesland", "Tollerne fant kokain i en koffert."),
        ("Mer crack på gata, sier sykepleier", "Hjelpeapparatet merker en ny brukergruppe."),
        ("Ungdom og kokain: – Det er blitt vanlig", "Kokainbruk på fest bekymrer politiet."),
        ("Politiet: snø solgt via apper i {p}", "Kokain leveres på døren."),
        ("Kokainen er renere enn før", "Analyser viser høy renhet."),
    ],
    "ketamin": [
        ("Ketamin på festen: flere til legevakten", "Legevakten i {p} ser flere forgiftninger."),
        ("Rekordstort ketaminbeslag", "Tollerne beslagla ketamin i en pakke fra Nederland."),
        ("Ungdom tar ket i helgene, sier politiet", "Ketamin selges billig."),
        ("Ketaminbruk blant unge øker", "Fagfolk bekymret for blærerskader."),
    ],
    "xanor": [
        ("Falske Xanor-tabletter i omløp", "Tablettene inneholdt andre benzodiazepiner."),
        ("Ksalol solgt som alprazolam", "Politiet advarer mot piller kjøpt på gata."),
        ("Unge kjøper Xanax på nett", "Legemidler uten resept er risikabelt."),
        ("Politiet beslagla stolper i {p}", "Tablettene var falske Xanor."),
    ],
}
FALSE_HITS = [
    ("Snø og glatte veier i {p}", "Minus 8 grader i natt."),
    ("Coca-Cola lanserer ny smak", "Brusen er den mest solgte i Norge."),
    ("Brann traff stolpen to ganger", "Kampen endte 0–0."),
    ("Minus 15 grader på Voss", "Kaldeste natt i vinter."),
    ("Ny rakett skutt opp fra Andøya", "Oppskytingen gikk etter planen."),
]
OUTLETS = {"bt": "https://www.bt.no", "ba": "https://www.ba.no"}
#: Weekly mean matching articles per substance (both outlets together) before any rise.
MEDIA_MEAN = {"heroin": 3.0, "kokain": 2.5, "ketamin": 1.5, "xanor": 1.5}


def media(rng: np.random.Generator, flat: Flat) -> None:
    by_month: dict[tuple[str, str], list[tuple[datetime, str, str, str]]] = {}
    weekly: dict[tuple[date, str, str], set[str]] = {}
    n = 0
    for monday in WEEKS:
        for sub in SUBSTANCES:
            mean = MEDIA_MEAN[sub] * level(sub, monday, strength=0.8) * season(monday, 0.1, 40)
            for _ in range(negbin(rng, mean, 6.0)):
                n += 1
                outlet = "bt" if rng.random() < 0.6 else "ba"
                t, d = HEADLINES[sub][int(rng.integers(len(HEADLINES[sub])))]
                place = PLACES[int(rng.integers(len(PLACES)))]
                when = datetime(monday.year, monday.month, monday.day, 6) + timedelta(
                    days=int(rng.integers(7)),
                    hours=int(rng.integers(16)),
                    minutes=int(rng.integers(60)),
                )
                link = f"{OUTLETS['bt']}/nyheter/lokalt/i/{n:06d}/{sub}"
                if outlet == "ba":
                    link = f"{OUTLETS['ba']}/nyheter/{n:06d}/{sub}"
                entry = (when, t.format(p=place), d.format(p=place), link)
                by_month.setdefault((outlet, when.strftime("%Y-%m")), []).append(entry)
                weekly.setdefault((monday, sub, outlet), set()).add(link)
                if outlet == "bt" and rng.random() < 0.04:  # syndicated to BA with tracking
                    dup = (
                        when + timedelta(hours=1),
                        entry[1],
                        "Saken ble først publisert i BT.",
                        f"{link}?utm_source=ba&utm_medium=syndication",
                    )
                    by_month.setdefault(("ba", dup[0].strftime("%Y-%m")), []).append(dup)
        if rng.random() < 0.15:
            t, d = FALSE_HITS[int(rng.integers(len(FALSE_HITS)))]
            n += 1
            when = datetime(monday.year, monday.month, monday.day, 7) + timedelta(
                days=int(rng.integers(7))
            )
            by_month.setdefault(("bt", when.strftime("%Y-%m")), []).append(
                (when, t.format(p="Bergen"), d, f"{OUTLETS['bt']}/nyheter/lokalt/i/{n:06d}/annet")
            )
    for (outlet, month), entries in sorted(by_month.items()):
        path = DATA / "media" / outlet / f"{month}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_rss(outlet, sorted(entries)), encoding="utf-8")
    for (monday, sub, outlet), links in weekly.items():
        flat.add(monday, sub, f"media-{outlet}", len(links), None, "46", "interest")


def _rss(outlet: str, entries: list[tuple[datetime, str, str, str]]) -> str:
    from datetime import UTC

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{outlet.upper()} – lokale nyheter</title><link>{OUTLETS[outlet]}/</link>",
        "<description>Nyheter</description>",
    ]
    for when, title, desc, link in entries:
        out.append(
            f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
            f"<pubDate>{format_datetime(when.replace(tzinfo=UTC))}</pubDate>"
            f"<description>{escape(desc)}</description></item>"
        )
    out.append("</channel></rss>")
    return "\n".join(out) + "\n"


# -- Google Trends -------------------------------------------------------------------

TREND_TERMS = {
    "heroin": "heroin",
    "kokain": "kokain",
    "crack": "kokain",
    "ketamin": "ketamin",
    "xanor": "xanor",
}
TREND_BASE = {"heroin": 22.0, "kokain": 40.0, "crack": 6.0, "ketamin": 12.0, "xanor": 9.0}
TREND_STRENGTH = {"heroin": 0.0, "kokain": 0.35, "crack": 1.4, "ketamin": 0.5, "xanor": 0.0}
EXPORTS = [  # (file, first week, last week): overlapping, each scaled to its own peak
    ("multiTimeline_2021-01_2023-12.csv", date(2021, 1, 4), date(2023, 12, 25)),
    ("multiTimeline_2023-01_2025-06.csv", date(2023, 1, 2), date(2025, 6, 30)),
    ("multiTimeline_2024-04_2026-03.csv", date(2024, 4, 1), LAST_WEEK),
]


def trends(rng: np.random.Generator, flat: Flat) -> None:
    latent = {
        term: {
            m: TREND_BASE[term]
            * season(m, 0.08, 27)
            * level(TREND_TERMS[term], m, strength=TREND_STRENGTH[term])
            * float(np.exp(rng.normal(0, 0.08)))
            for m in WEEKS
        }
        for term in TREND_TERMS
    }
    out = DATA / "trends"
    out.mkdir(parents=True, exist_ok=True)
    for name, first, last in EXPORTS:
        weeks = [m for m in WEEKS if first <= m <= last]
        # sampling noise differs per export, as Google samples searches per request
        values = {
            t: [latent[t][m] * float(np.exp(rng.normal(0, 0.05))) for m in weeks]
            for t in TREND_TERMS
        }
        peak = max(max(v) for v in values.values())
        lines = [
            "Category: All categories",
            "",
            "Week," + ",".join(f"{t}: (Norway)" for t in TREND_TERMS),
        ]
        for i, m in enumerate(weeks):
            cells = []
            for t in TREND_TERMS:
                v = 100 * values[t][i] / peak
                cells.append("<1" if 0 < v < 0.5 else str(round(v)))
            lines.append(f"{sunday_before(m).isoformat()}," + ",".join(cells))
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    peak = max(max(v.values()) for v in latent.values())
    for m in WEEKS:
        for sub in SUBSTANCES:
            v = sum(100 * latent[t][m] / peak for t, s in TREND_TERMS.items() if s == sub)
            flat.add(m, sub, "google-trends", round(v, 1), None, "NO", "interest", "index")


# -- lab, ambulance, consumption room ------------------------------------------------

LAB_SHARE = {"heroin": 0.030, "kokain": 0.055, "ketamin": 0.012, "xanor": 0.020}
LAB_NAMES = {"heroin": "Heroin", "kokain": "Kokain", "ketamin": "Ketamin", "xanor": "Alprazolam"}


def lab(rng: np.random.Generator, flat: Flat) -> None:
    out = DATA / "lab"
    out.mkdir(parents=True, exist_ok=True)
    rows, revised = [], []
    for m in WEEKS:
        tests = negbin(rng, 420 * season(m, 0.05, 30), 60.0)
        for sub in SUBSTANCES:
            pos = negbin(rng, tests * LAB_SHARE[sub] * level(sub, m), 12.0)
            final = pos
            if m >= LAST_WEEK - timedelta(weeks=3):  # late results still coming in
                final = pos + int(rng.integers(1, 4))
                revised.append((m, sub, final, tests + 15))
            rows.append((m, sub, pos, tests))
            flat.add(m, sub, "lab-mbf", final, tests + (15 if final != pos else 0), "46", "use")
    header = "Uke;Stoff;Positive;Analyser;Andel positive (%)\n"

    def line(m: date, sub: str, pos: int, tests: int) -> str:
        iso = m.isocalendar()
        return (
            f"{iso[0]}-W{iso[1]:02d};{LAB_NAMES[sub]};{pos};{tests};{_comma(100 * pos / tests)}\n"
        )

    (out / "mbf_positive_2021-2026.csv").write_text(
        header + "".join(line(*r) for r in rows), encoding="utf-8"
    )
    (out / "mbf_positive_revisjon_2026-03.csv").write_text(
        header + "".join(line(*r) for r in revised), encoding="utf-8"
    )


AMK_MEAN = {"heroin": 6.0, "kokain": 3.0, "ketamin": 1.2, "xanor": 2.0}


def ambulance(rng: np.random.Generator, flat: Flat) -> None:
    out = DATA / "ambulance"
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["uke_start", "rusmiddel", "utrykninger"])
    for m in WEEKS:
        if m < date(2023, 1, 2):
            continue
        for sub in SUBSTANCES:
            n = negbin(rng, AMK_MEAN[sub] * season(m, 0.06, 28) * level(sub, m, strength=0.9), 5.0)
            w.writerow(
                [m.isoformat(), {"kokain": "kokain/crack", "xanor": "Xanor"}.get(sub, sub), n]
            )
            flat.add(m, sub, "amk-bergen", n, None, "46", "use")
    (out / "amk_bergen_2023-2026.csv").write_text(buf.getvalue(), encoding="utf-8")


ROOM_MEAN = {"heroin": 95.0, "kokain": 28.0, "ketamin": 2.0}


def consumption_room(rng: np.random.Generator, flat: Flat) -> None:
    out = DATA / "consumption_room"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["uke;Heroin (injeksjon);Kokain/crack (inhalasjon);Ketamin;Amfetamin"]
    for m in WEEKS:
        cells = []
        for sub in ("heroin", "kokain", "ketamin"):
            n = negbin(rng, ROOM_MEAN[sub] * season(m, 0.06, 30) * level(sub, m), 15.0)
            cells.append(str(n))
            flat.add(m, sub, "brukerrom", n, None, "46", "use", "visits")
        cells.append(str(negbin(rng, 40.0, 15.0)))
        lines.append(m.isoformat() + ";" + ";".join(cells))
    (out / "brukerrom_besok.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- customs seizures (XLSX) ---------------------------------------------------------

SEIZURE_MEAN = {"heroin": 9.0, "kokain": 16.0, "ketamin": 5.0, "xanor": 7.0}
SEIZURE_GRAMS = {"heroin": 120.0, "kokain": 300.0, "ketamin": 150.0, "xanor": 40.0}
SEIZURE_NAMES = {
    "heroin": "Heroin",
    "kokain": "Kokain",
    "ketamin": "Ketamin",
    "xanor": "Alprazolam (Xanor)",
}


def seizures(rng: np.random.Generator, flat: Flat) -> None:
    from openpyxl import Workbook

    out = DATA / "customs"
    out.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "Beslag"
    ws.append(["Tolletaten – narkotikabeslag per måned (eksempeldata)"])
    ws.append([])
    ws.append(["Måned", "Stoff", "Antall beslag", "Mengde (g)"])
    months = sorted({m.replace(day=1) for m in WEEKS})
    for month in months:
        for sub in SUBSTANCES:
            # heroin availability falls slowly; crack/cocaine seizures follow the rise
            trend = 1.0 - 0.12 * (month.year - 2021) / 5 if sub == "heroin" else 1.0
            strength = 0.8 if sub == "kokain" else 0.0
            count = negbin(
                rng, SEIZURE_MEAN[sub] * trend * level(sub, month, strength=strength), 6.0
            )
            grams = float(sum(rng.lognormal(np.log(SEIZURE_GRAMS[sub]), 1.3) for _ in range(count)))
            ws.append(
                [datetime(month.year, month.month, 1), SEIZURE_NAMES[sub], count, round(grams, 1)]
            )
            flat.add(month, sub, "toll-beslag", count, None, "NO", "availability")
    wb.properties.creator = "warnd examples"
    wb.properties.created = wb.properties.modified = datetime(2026, 3, 30)
    buf = io.BytesIO()
    wb.save(buf)
    (out / "tolletaten_beslag.xlsx").write_bytes(_stable_zip(buf.getvalue()))


def _stable_zip(raw: bytes) -> bytes:
    """The same workbook bytes on every run: fixed timestamps and order in the zip."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(src.namelist()):
            info = zipfile.ZipInfo(name, date_time=(2026, 3, 30, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = src.read(name)
            if name == "docProps/core.xml":  # openpyxl stamps the save time here
                data = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2026-03-30T00:00:00Z", data
                )
            dst.writestr(info, data)
    return out.getvalue()


# -- wastewater ----------------------------------------------------------------------

CITIES = {"Oslo": 1.0, "Bergen": 0.75, "Trondheim": 0.6}
WW_BASE = {"kokain": 260.0, "ketamin": 18.0}  # mg / 1000 inhabitants / day
CAMPAIGNS = [
    date(y, mo, d)
    for y, mo, d in (
        (2021, 3, 15),
        (2021, 9, 27),
        (2022, 3, 14),
        (2022, 9, 26),
        (2023, 3, 13),
        (2023, 9, 25),
        (2024, 3, 11),
        (2024, 9, 23),
        (2025, 3, 10),
        (2025, 9, 22),
        (2026, 3, 9),
    )
]


def wastewater(rng: np.random.Generator, flat: Flat) -> None:
    out = DATA / "wastewater"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["dato;by;kokain (BE);ketamin;MDMA"]
    for start in CAMPAIGNS:
        for city, size in CITIES.items():
            week: dict[str, list[float]] = {"kokain": [], "ketamin": []}
            for d in range(7):
                day = start + timedelta(days=d)
                weekend = 1.35 if day.weekday() >= 5 else 1.0
                vals = {}
                for sub, base in WW_BASE.items():
                    v = base * size * level(sub, day) * float(np.exp(rng.normal(0, 0.12)))
                    if sub == "kokain":
                        v *= weekend
                    if sub == "ketamin" and city == "Oslo" and day == date(2024, 9, 25):
                        v *= 30  # dumping of pure substance: one extreme sample, not use
                    vals[sub] = v
                    week[sub].append(v)
                mdma = 15 * size * weekend * float(np.exp(rng.normal(0, 0.15)))
                lines.append(
                    f"{day.isoformat()};{city};{_comma(vals['kokain'])};{_comma(vals['ketamin'])};{_comma(mdma)}"
                )
            for sub, vals in week.items():
                flat.add(
                    start, sub, "avlopsvann", round(float(np.mean(vals)), 1), None, city, "use",
                    "concentration",
                )
    (out / "avlopsvann_2021-2026.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- trend panel ---------------------------------------------------------------------

WORDS = {
    -2: "sterk nedgang",
    -1: "liten nedgang",
    0: "stabil",
    1: "liten økning",
    2: "sterk økning",
}
GROUPS = ["samfunn"] * 12 + ["natteliv"] * 10 + ["rusmiljø"] * 12  # 34 informants
ROUNDS = [date(y, mo, 15) for y in range(2021, 2026) for mo in (3, 9)] + [date(2026, 3, 15)]


def panel(rng: np.random.Generator, flat: Flat) -> None:
    out = DATA / "panel"
    out.mkdir(parents=True, exist_ok=True)
    for rnd in ROUNDS:
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=";", lineterminator="\n")
        w.writerow(["informant", "gruppe", "runde", "stoff", "dimensjon", "svar"])
        sums: dict[tuple[str, str], list[int]] = {}
        for i, group in enumerate(GROUPS, start=1):
            for sub in SUBSTANCES:
                for dim, word in (("use", "bruk"), ("availability", "tilgjengelighet")):
                    if rng.random() < 0.12:
                        w.writerow([i, group, rnd.isoformat(), sub, word, "vet ikke"])
                        continue
                    rising = sub in RISES and rnd == ROUNDS[-1]
                    if rising and dim == "use":
                        p = [0.0, 0.02, 0.1, 0.38, 0.5]
                    elif rising:
                        p = [0.02, 0.05, 0.45, 0.33, 0.15]
                    elif sub == "heroin" and dim == "availability":
                        p = [0.05, 0.2, 0.6, 0.12, 0.03]
                    else:
                        p = [0.03, 0.14, 0.66, 0.14, 0.03]
                    score = int(rng.choice([-2, -1, 0, 1, 2], p=p))
                    w.writerow([i, group, rnd.isoformat(), sub, word, WORDS[score]])
                    sums.setdefault((sub, dim), []).append(score)
        (out / f"trendpanel_{rnd:%Y-%m}.csv").write_text(buf.getvalue(), encoding="utf-8")
        for (sub, dim), scores in sums.items():
            flat.add(rnd, sub, "trendpanel", sum(scores), len(scores), "46", dim, f"score:{dim}")


# -- overdosefare --------------------------------------------------------------------

NOTICES = [
    (
        date(2026, 1, 14),
        "ksalol-nitazener",
        "Ksalol-tabletter inneholdt nitazener",
        "Tabletter solgt som Ksalol (alprazolam) i Vestland inneholdt protonitazen. Ikke bruk alene.",
    ),
    (
        date(2026, 1, 29),
        "crack-levamisol",
        "Crack blandet med levamisol",
        "Crack og kokain i Bergen er funnet blandet med levamisol. Oppsøk lege ved feber.",
    ),
    (
        date(2026, 2, 12),
        "ketamin-hoy-styrke",
        "Ketamin med uvanlig høy styrke",
        "Analyser viser ketamin med høy renhet i Bergen og Oslo. Start med lav dose.",
    ),
    (
        date(2026, 2, 26),
        "blaa-stolper",
        "Blå stolper med bromazolam",
        "Tabletter formet som Xanor-stolper inneholdt bromazolam.",
    ),
    (
        date(2026, 3, 12),
        "crack-overdoser",
        "Flere overdoser etter røyking av crack",
        "Legevakten i Bergen melder om flere overdoser etter crackrøyking.",
    ),
    (
        date(2026, 3, 24),
        "ketamin-blaere",
        "Ketamin og blæreskader",
        "Hyppig bruk av ketamin gir skader på urinblæren.",
    ),
]
NO_MONTHS = [
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
]


def notices() -> None:
    out = DATA / "overdosefare"
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="no"><head><meta charset="utf-8"><title>Varsler – Overdosefare</title></head>',
        '<body><main><h1>Varsler</h1><section class="varsler">',
    ]
    for day, slug, title, text in sorted(NOTICES, reverse=True):
        parts.append(
            f'<article class="varsel"><h2><a href="/varsler/{slug}">{escape(title)}</a></h2>'
            f'<time datetime="{day.isoformat()}">{day.day}. {NO_MONTHS[day.month - 1]} {day.year}</time>'
            f"<p>{escape(text)}</p></article>"
        )
    parts.append("</section></main></body></html>")
    (out / "varsler.html").write_text("\n".join(parts) + "\n", encoding="utf-8")


def main() -> None:
    rng = np.random.default_rng(SEED)
    if DATA.exists():
        shutil.rmtree(DATA)
    DATA.mkdir(parents=True)
    flat = Flat()
    media(rng, flat)
    trends(rng, flat)
    lab(rng, flat)
    ambulance(rng, flat)
    consumption_room(rng, flat)
    seizures(rng, flat)
    wastewater(rng, flat)
    panel(rng, flat)
    notices()
    flat.write(HERE / "observations.csv")


if __name__ == "__main__":
    main()
