"""The console's words, Norwegian and English (``general.language``)."""

from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "no": {
        "overview": "Oversikt", "alerts": "Varsler", "sources": "Kilder", "outbox": "Utboks",
        "login": "Logg inn", "logout": "Logg ut", "user": "Brukernavn", "password": "Passord",
        "substance": "Stoff", "use": "Bruk", "availability": "Tilgjengelighet",
        "interest": "Interesse", "sum": "Samlet", "agree": "Kilder", "open_alerts": "Åpne varsler",
        "trend": "Utvikling", "verdict": "Vurdering", "no_findings": "Ingen funn i perioden.",
        "window": "Funn sett {since} – {until}.",
        "score_help": "Poeng per kilde: −2 sterk nedgang … +2 sterk økning; summert per "
                      "dimensjon.",
        "series": "Dataserier", "expected": "forventet", "band": "forventet område (95 %)",
        "threshold": "varslingsgrense", "onset": "start på endring", "changepoint": "brudd",
        "spike": "topp", "value": "verdi", "findings": "Funn", "headlines": "Siste saker og "
        "varsler", "messages": "Meldinger sendt", "no_messages": "Ingen meldinger om stoffet.",
        "no_headlines": "Ingen saker.", "state": "Status", "all": "alle", "open": "åpen",
        "acked": "kvittert", "silenced": "dempet", "resolved": "avsluttet", "created": "Opprettet",
        "muted": "dempet i oppsettet",
        "ack": "Kvitter", "silence": "Demp", "silence_14": "Demp 14 dager", "for": "Varighet",
        "reason": "Begrunnelse", "silences": "Dempinger", "until": "til", "by": "av",
        "expire": "Avslutt demping", "no_alerts": "Ingen varsler.", "no_silences":
        "Ingen aktive dempinger.", "healthy": "i orden", "unhealthy": "feiler", "stale":
        "utdatert", "last_fetch": "Siste henting", "last_ok": "Siste vellykkede",
        "newest": "Nyeste data", "problems": "Problemer", "never": "aldri", "every": "hver",
        "days_old": "{n} dager gamle",
        "target": "Mottaker", "attempts": "Forsøk", "error": "Feil", "retry": "Prøv igjen",
        "drop": "Forkast", "pending": "venter", "failed": "feilet", "expired": "utløpt",
        "delivered": "levert", "dropped": "forkastet", "no_deliveries": "Ingen leveringer "
        "venter eller har feilet.", "more_deliveries": "{n} til er ikke vist: de nyeste "
        "{shown} av {total} leveringer er vist; warnd outbox --limit {total} viser alle.",
        "confirm": "Bekreft", "confirm_ack": "Kvittere for varsel "
        "#{id}: {title}?", "confirm_silence": "Dempe «{label}» i 14 dager (varsel #{id}: "
        "{title})?", "done_ack": "Varsel #{id} er kvittert av {who}.", "done_silence":
        "«{label}» er dempet til {until} av {who}.",
        "already_acked": "Allerede kvittert av {who} {when}.",
        "ack_again": "Å bekrefte endrer ingenting.",
        "already_silenced": "Allerede dempet av {who} til {until}.",
        "was_ended": "Hendelsen er over.",
        "was_ended_at": "Hendelsen er over: slutten ble meldt {when} (varsel #{id}).",
        "was_withdrawn_at": "Trukket tilbake: kilden rettet tallene varselet bygde på, og "
        "rettelsen ble meldt {when} (varsel #{id}).", "link_expired": "Lenken er utløpt. "
        "Åpne varselet i konsollet i stedet.", "link_invalid": "Lenken er ugyldig.",
        "forbidden": "Din rolle kan ikke gjøre dette.", "csrf": "Skjemaet var utløpt eller "
        "ugyldig. Last siden på nytt og prøv igjen.", "login_needed": "Du må logge inn.",
        "login_failed": "Feil brukernavn eller passord.", "login_blocked": "For mange "
        "mislykkede forsøk. Vent et kvarter og prøv igjen.", "not_found": "Finnes ikke.",
        "superseded": "Ikke sendt på nytt: {target} har fått en senere melding om samme "
        "sak (varsel #{later}), og denne ville kommet etter den, utdatert. Forkast den "
        "i stedet.",
        "bad_input": "Ugyldig: {what}", "history": "Historikk", "actions": "Handlinger",
        "role": "rolle", "certainty": "sikkerhet", "change": "endring",
        "level": "nivå før → etter", "detected": "oppdaget", "since": "siden",
        "unknown_substance": "Ukjent stoff.", "back": "Tilbake", "kind": "Type",
        "severity": "Alvor", "source": "Kilde", "open_link": "Åpne", "status_in": "Status",
        "days": "dager", "date": "Dato", "band_lo": "nedre grense", "band_hi": "øvre grense",
        "hours": "timer", "no_data": "Ingen data.", "account": "Innlogginger", "finding": "funn",
        "sessions_help": "Der du er logget inn nå. Avslutt en innlogging du ikke kjenner igjen, "
        "og bytt passord (warnd user add NAVN --update).", "started": "Startet",
        "last_seen": "Sist brukt", "address": "Adresse", "browser": "Nettleser",
        "this_session": "denne", "end_session": "Avslutt", "end_others": "Avslutt alle andre",
    },
    "en": {
        "overview": "Overview", "alerts": "Alerts", "sources": "Sources", "outbox": "Outbox",
        "login": "Log in", "logout": "Log out", "user": "User name", "password": "Password",
        "substance": "Substance", "use": "Use", "availability": "Availability",
        "interest": "Interest", "sum": "Total", "agree": "Sources", "open_alerts": "Open alerts",
        "trend": "Trend", "verdict": "Assessment", "no_findings": "No findings in the period.",
        "window": "Findings seen {since} – {until}.",
        "score_help": "Score per source: −2 strong decrease … +2 strong increase; summed per "
                      "dimension.",
        "series": "Series", "expected": "expected", "band": "expected range (95%)",
        "threshold": "alert threshold", "onset": "change starts", "changepoint": "break",
        "spike": "spike", "value": "value", "findings": "Findings", "headlines":
        "Recent headlines and warnings", "messages": "Messages sent", "no_messages":
        "No messages about this substance.", "no_headlines": "No headlines.", "state": "State",
        "all": "all", "open": "open", "acked": "acknowledged", "silenced": "silenced",
        "muted": "muted in the configuration",
        "resolved": "resolved", "created": "Created", "ack": "Acknowledge", "silence":
        "Silence", "silence_14": "Silence 14 days", "for": "Duration", "reason": "Reason",
        "silences": "Silences", "until": "until", "by": "by", "expire": "End silence",
        "no_alerts": "No alerts.", "no_silences": "No active silences.", "healthy": "healthy",
        "unhealthy": "failing", "stale": "stale", "last_fetch": "Last fetch", "last_ok":
        "Last success", "newest": "Newest data", "problems": "Problems", "never": "never",
        "every": "every", "days_old": "{n} days old",
        "target": "Target", "attempts": "Attempts", "error": "Error", "retry": "Retry",
        "drop": "Drop", "pending": "pending", "failed": "failed", "expired": "expired",
        "delivered": "delivered", "dropped": "dropped", "no_deliveries": "No deliveries "
        "waiting or failed.", "more_deliveries": "{n} more not listed: the newest {shown} "
        "of {total} deliveries listed; warnd outbox --limit {total} lists them all.",
        "confirm": "Confirm", "confirm_ack": "Acknowledge alert #{id}: "
        "{title}?", "confirm_silence": "Silence “{label}” for 14 days (alert #{id}: {title})?",
        "done_ack": "Alert #{id} acknowledged by {who}.", "done_silence": "“{label}” silenced "
        "until {until} by {who}.",
        "already_acked": "Already acknowledged by {who} on {when}.",
        "ack_again": "Confirming changes nothing.",
        "already_silenced": "Already silenced by {who} until {until}.",
        "was_ended": "Its episode has ended.",
        "was_ended_at": "Its episode has ended: the end was told on {when} (alert #{id}).",
        "was_withdrawn_at": "Withdrawn: the source corrected the figures the alert rested "
        "on, and the correction was told on {when} (alert #{id}).",
        "link_expired": "The link has expired. Open the alert in "
        "the console instead.", "link_invalid": "The link is not valid.", "forbidden":
        "Your role may not do this.", "csrf": "The form had expired or was invalid. Reload "
        "the page and try again.", "login_needed": "Please log in.", "login_failed":
        "Wrong user name or password.", "login_blocked": "Too many failed attempts. Wait a "
        "quarter of an hour and try again.", "not_found": "Not found.",
        "superseded": "Not queued again: {target} has had a later message on the same "
        "matter since (alert #{later}), and this one would arrive after it, out of date. "
        "Drop it instead.", "bad_input":
        "Invalid: {what}", "history": "History", "actions": "Actions", "role": "role",
        "certainty": "certainty", "change": "change", "level": "level before → after",
        "detected": "detected", "since": "since", "unknown_substance": "Unknown substance.",
        "back": "Back", "kind": "Kind", "severity": "Severity", "source": "Source",
        "open_link": "Open",
        "status_in": "State", "days": "days", "date": "Date", "band_lo": "lower bound",
        "band_hi": "upper bound", "hours": "hours", "no_data": "No data.", "account": "Sessions", "finding": "finding",
        "sessions_help": "Where you are logged in now. End a session you do not recognise and "
        "change your password (warnd user add NAME --update).", "started": "Started",
        "last_seen": "Last used", "address": "Address", "browser": "Browser",
        "this_session": "this one", "end_session": "End", "end_others": "End all others",
    },
}


def texts(lang: str) -> dict[str, str]:
    return TEXT.get(lang, TEXT["en"])
