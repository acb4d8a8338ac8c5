"""Overview, substance and sources pages (read only)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from warnd.alerting.names import certainty, level, series_name
from warnd.alerting.silences import holds_back
from warnd.alerting.wording import usual_peak, usual_peak_fields
from warnd.service.health import collect_status
from warnd.web import data
from warnd.web.auth import guard


@guard("viewer")
def overview(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    ov = data.overview(web.cfg, store)
    return web.page(request, who, "overview.html", title=web.t["overview"], ov=ov)


@guard("viewer")
def substance(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    sid = request.path_params["sid"]
    known = sid in web.cfg.substances or store.q(
        "SELECT 1 FROM findings WHERE substance=? LIMIT 1", [sid])
    if not known:
        return web.error(request, who, 404, "unknown_substance")
    lang = web.lang
    page = data.substance_page(web.cfg, store, sid)
    for f in page["findings"]:
        f["series_name"] = series_name(web.cfg, f["source"], f["region"], f["metric"], lang,
                                       share=f["share"])
        f["levels"] = (f"{level(f['level_before'], lang, share=f['share'])} → "
                       f"{level(f['level_after'], lang, share=f['share'])}")
        try:
            ev = json.loads(f.get("evidence") or "{}")
        except ValueError:
            ev = {}
        ev = ev if isinstance(ev, dict) else {}
        f["usual_peak"] = usual_peak(usual_peak_fields(ev), lang)
        f["certainty"] = certainty(f["p_value"], lang)
        f["kind_words"] = _kind_words(f["kind"], f["direction"], lang)
        f["words"] = _cat_words(f["category"], lang)
    silences = _holding_back(web, store, sid)
    return web.page(request, who, "substance.html", title=web.cfg.substance_label(sid),
                    sid=sid, label=web.cfg.substance_label(sid), page=page, silences=silences)


def _holding_back(web: Any, store: Any, sid: str) -> list[dict[str, Any]]:
    """The active silences that hold back messages about the substance: of it, and of a
    kind or a source alone that its alerts are of (:func:`holds_back`), each with what
    it covers in words when that is less than the whole substance."""
    sources = [r["source"] for r in store.q(
        "SELECT DISTINCT source FROM series WHERE substance=? UNION SELECT DISTINCT i.source "
        "FROM items i JOIN item_substances s ON s.key = i.key WHERE s.substance=?",
        [sid, sid])]
    out = []
    for s in store.silences(active_only=True):
        if holds_back(s, sid, sources):
            s["covers"] = ", ".join(
                [f"{web.t['kind'].lower()} {s['kind']}"] * bool(s["kind"])
                + [f"{web.t['source'].lower()} {web.cfg.source_label(s['source'])}"]
                * bool(s["source"]))
            out.append(s)
    return out


def _kind_words(kind: str, direction: str, lang: str) -> str:
    """A finding's kind as people say it: increase, decrease, one-off spike."""
    from warnd.alerting.wording import T

    t = T.get(lang, T["no"])
    if kind == "spike":
        return str(t["spike"])
    if direction == "decrease":
        return str(t["decrease"])
    return "Økning" if lang == "no" else "Increase"


def _cat_words(cat: int | None, lang: str) -> str:
    from detectors.base import SCALE

    return SCALE[int(cat or 0)][0 if lang == "no" else 1]


@guard("viewer")
def chart_json(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    c = data.chart_for(web.cfg, store, request.path_params["sid"], request.path_params["n"])
    if c is None:
        return JSONResponse({"error": web.t["not_found"]}, status_code=404)
    return JSONResponse(c, headers={"Cache-Control": "private, max-age=60"})


@guard("viewer")
def sources(request: Request, who: dict[str, Any], store: Any) -> Response:
    web = request.app.state.web
    st = collect_status(web.cfg)  # the newest data from the series, not a scan of all rows
    for s in st["sources"]:
        s["label"] = web.cfg.source_label(s["name"])
        s["newest"] = s["newest_data"]
        # "every 6h" in the console's language (`warnd status` keeps its own words)
        src = web.cfg.source(s["name"])
        if not src.cron:
            s["schedule"] = f"{web.t['every']} {src.interval or '1h'}"
    return web.page(request, who, "sources.html", title=web.t["sources"], st=st)
