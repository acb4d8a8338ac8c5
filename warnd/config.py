"""Load and validate ``config.toml`` into frozen models.

Every problem is reported as one line naming the key path, what was expected and
what was found, e.g. ``sources[2].interval: "10 parsecs" is not a duration``.
Unknown keys are errors. ``warnd check-config`` runs exactly this code.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from warnd.errors import ConfigError

DEFAULT_PATHS = ("./config.toml", "/etc/warnd/config.toml")
DIMENSIONS = ("use", "availability", "interest")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
#: The longest interval of a scheduled job: its next run stays on the calendar.
MAX_INTERVAL = timedelta(days=36500)


@functools.lru_cache(maxsize=256, typed=True)  # status asks once per source
def parse_duration(text: str | int | float) -> timedelta:
    """Parse ``"90s"``, ``"30m"``, ``"1h30m"``, ``"2d"``, ``"2w"`` (or a number of seconds)."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"{text!r} is not a duration (negative)")
        total = float(text)
    else:
        s = str(text).strip().replace(" ", "")
        pos, total = 0, 0.0
        for m in _DURATION_RE.finditer(s):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2).lower()]
            pos = m.end()
        if not s or pos != len(s):
            raise ValueError(
                f'"{text}" is not a duration (use e.g. "90s", "30m", "6h", "1d", "2w")')
    try:
        return timedelta(seconds=total)
    except OverflowError:  # beyond a billion days
        raise ValueError(f'"{text}" is too long a duration') from None


def schedule_interval(text: str) -> timedelta:
    """``text``, a job's interval (a source's ``interval``, ``general.detect_interval``),
    checked: a duration of at most :data:`MAX_INTERVAL`, whose next run the scheduler can
    put on the calendar."""
    took = parse_duration(text)
    if took > MAX_INTERVAL:
        raise ValueError(f'"{text}" is too long (at most 100 years, "36500d")')
    return took


def split_duration(text: str) -> tuple[int, timedelta]:
    """A duration as whole days (its ``d`` and ``w``) and the rest as elapsed time:
    ``"14d"`` → (14, 0), ``"1w2d12h"`` → (9, 12 h), ``"1.5d"`` → (1, 12 h), ``"36h"`` →
    (0, 36 h). For what ends at the same clock time some days later (a silence)."""
    total = parse_duration(text)  # the same checks and messages
    s = str(text).strip().replace(" ", "")
    days = 0.0
    for m in _DURATION_RE.finditer(s):
        if m.group(2).lower() in ("d", "w"):
            days += float(m.group(1)) * _UNITS[m.group(2).lower()] / 86400
    whole = int(days)
    return whole, total - timedelta(days=whole)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _words(value: Any) -> str | tuple[tuple[str, str], ...]:
    """Words people read: one text, or a table of one text per language (kept as its
    pairs, so that the config stays hashable)."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        value = dict(value)  # validated again, as stored
    if (isinstance(value, dict) and value
            and all(k in ("no", "en") and isinstance(t, str) and t.strip()
                    for k, t in value.items())):
        return tuple(sorted(value.items()))
    raise ValueError(
        'give one text ("Kokain") or a text per language, no and en '
        f'({{ no = "Kokain", en = "Cocaine" }}); got {value!r}')


#: Words people read, one text or one per language: ``"Kokain"`` or
#: ``{ no = "Kokain", en = "Cocaine" }``.
Words = Annotated[str | tuple[tuple[str, str], ...], PlainValidator(_words)]


def in_language(words: Words | None, lang: str) -> str | None:
    """``words`` in ``lang``: the text itself, or its text in that language, else in the
    other (a label given only in Norwegian names the source in an English report too)."""
    if words is None or isinstance(words, str):
        return words
    texts: dict[str, str] = dict(words)
    return texts.get(lang) or next((w for w in texts.values() if w), None)


class GeneralConfig(_Model):
    state_dir: Path = Field(
        Path("/var/lib/warnd"),
        description="Directory for the SQLite store and rendered charts. "
        "$WARND_STATE_DIR (or systemd's $STATE_DIRECTORY) overrides it.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    language: Literal["no", "en"] = Field("no", description="Language of alerts and reports.")
    timezone: str = Field("Europe/Oslo", description="Time zone for schedules and quiet hours.")
    detect_interval: str = Field(
        "1h", description="How often detection runs over all series besides after each poll."
    )
    detect_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes a large detect pass (at least 20,000 series) is split over, "
        "by substance: 2 on a two-core machine judges such a pass in a little over half "
        "the time, each process with a pass's memory; 1 judges every pass in one process.",
    )
    backfill_current_periods: int = Field(
        4,
        ge=0,
        description="On first ingestion of history, only episodes detected within this many "
        "latest periods of their series are alerted; older ones are recorded silently.",
    )
    unhealthy_after: int = Field(
        3,
        ge=1,
        description="Consecutive poll failures after which a source is unhealthy: shown by "
        "`warnd status` and alerted once (kind source_health) until it recovers.",
    )

    allow_empty: bool = Field(
        False, description="Accept a config without sources or without targets (otherwise "
        "refused: nothing would be monitored, or nobody told)."
    )
    health_listen: str | None = Field(
        None,
        description='HOST:PORT of the optional HTTP listener serving /healthz and /metrics '
        '(e.g. "127.0.0.1:9464"); off when unset.',
    )
    stale_after_intervals: float = Field(
        3.0,
        gt=0,
        description="A source with no successful poll for more than this many of its "
        "intervals counts as stale, and a stale source makes `warnd status` unhealthy.",
    )
    store_busy_timeout: str = Field(
        "30s", description="How long a write waits for another process's lock on the store."
    )
    stop_timeout: str = Field(
        "60s", description="On SIGTERM, how long running jobs may take to finish."
    )
    fetch_timeout: str = Field("10s", description="Connect/read timeout of one HTTP request.")
    fetch_deadline: str = Field(
        "60s", description="Time limit of one source's whole fetch, retries included."
    )
    fetch_max_bytes: int = Field(
        20_000_000, gt=0, description="Largest document (after decompression) a source may send."
    )
    fetch_retries: int = Field(2, ge=0, description="Retries after a temporary fetch failure.")
    fetch_max_redirects: int = Field(5, ge=0, description="Redirects followed before giving up.")

    @field_validator("health_listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            parse_listen(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'"{v}" is not a known time zone (e.g. "Europe/Oslo")') from None
        return v

    @field_validator("stop_timeout", "fetch_timeout", "fetch_deadline", "store_busy_timeout")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("detect_interval")
    @classmethod
    def _detect_interval(cls, v: str) -> str:
        schedule_interval(v)
        return v


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` or ``"[::1]:9464"`` -> (host, port); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f'"{text}" is not HOST:PORT (e.g. "127.0.0.1:9464")')
    if "\0" in host:
        raise ValueError(f"{text!r}: the host name holds a NUL character")
    if not host.isascii():
        # encoded as the socket module does: a label (the text between dots) of more than
        # 63 characters, or an empty one, raised a UnicodeError when the listener started
        try:
            host.encode("idna")
        except UnicodeError:
            raise ValueError(f'"{text}" is not a host name: each part between dots must be '
                             "1 to 63 characters long (in its IDNA form)") from None
    return host, int(port)


class SubstanceConfig(_Model):
    label: Words | None = Field(
        None, description='Name shown in alerts and reports, one text or one per language '
        '({ no = "Kokain", en = "Cocaine" }); defaults to the id.')
    names: list[str] = Field(
        default_factory=list,
        description="Names matched inside words (compounds, inflections): "
        '"kokain" finds "kokainen", "crackkokain".',
    )
    slang: list[str] = Field(default_factory=list, description="Whole-word slang terms.")
    slang_needs_context: bool = Field(
        True, description="Slang counts only with a drug-context word in the same text."
    )
    exclude: list[str] = Field(default_factory=list, description="Phrases that never count.")
    context: list[str] = Field(
        default_factory=list,
        description="Context words of this substance that let its slang count, besides the "
        'shared drug-context words (matched at the start of a word: "sniff" finds "sniffet").',
    )
    muted: bool = Field(False, description="Record findings but send no alerts.")
    detection: dict[str, Any] = Field(
        default_factory=dict, description="Detection parameter overrides for this substance."
    )


class SourceConfig(BaseModel):
    """A ``[[sources]]`` entry. Keys not listed here belong to the source's kind."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    kind: str
    location: str
    label: Words | None = None
    unit: Words | None = None
    interval: str | None = None
    cron: str | None = None
    dimension: Literal["use", "availability", "interest"]
    region: str = ""
    weight: float = Field(1.0, gt=0)
    enabled: bool = True
    substances: list[str] | None = None
    detection: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(
                f'"{v}" is not a valid name (lower-case letters, digits, "-", "_" and ".")'
            )
        return v

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        if v is not None and schedule_interval(v).total_seconds() < 1:
            raise ValueError(f'"{v}" is too short (at least "1s")')
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            cron_fields(v)
        return v

    @model_validator(mode="after")
    def _schedule(self) -> SourceConfig:
        if self.interval and self.cron:
            raise ValueError("give either interval or cron, not both")
        return self

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def schedule(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.interval or '1h'}"


def cron_fields(expr: str) -> dict[str, str]:
    """Split a 5-field crontab line into APScheduler ``CronTrigger`` keyword arguments.

    Day-of-week is given by name or 0-6 with 0 = Sunday as in crontab(5); it is
    converted to names, because APScheduler 3 counts 0 = Monday.
    """
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f'"{expr}" is not a cron expression (5 fields: min hour day month dow)')
    minute, hour, day, month, dow = parts
    names = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    def conv(tok: str) -> str:
        if tok.isdigit():
            if int(tok) > 7:
                raise ValueError(f'"{expr}": day of week {tok} is not 0-7')
            return names[int(tok)]
        return tok

    dow = re.sub(r"\d+", lambda m: conv(m.group(0)), dow)
    fields = {"minute": minute, "hour": hour, "day": day, "month": month, "day_of_week": dow}
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger(**fields, timezone="UTC")
    except ValueError as e:
        raise ValueError(f'"{expr}" is not a valid cron expression: {e}') from None
    return fields


class TargetConfig(_Model):
    name: str
    url: str = Field(description="An apprise URL (mailto://, mailtos://, workflows://, https://...).")
    tags: list[str] = Field(default_factory=list)
    muted: bool = False
    password_env: str | None = Field(
        None, description="Environment variable holding the password, inserted into the URL."
    )
    password_file: str | None = Field(
        None,
        description="File holding the password; a relative name is looked up in "
        "$CREDENTIALS_DIRECTORY (systemd LoadCredential).",
    )
    connect_timeout: str = Field(
        "10s", description="Time allowed to connect to the target's server (TCP and TLS)."
    )
    read_timeout: str = Field(
        "30s", description="Time allowed for the target's server to answer once connected."
    )

    @field_validator("connect_timeout", "read_timeout")
    @classmethod
    def _timeouts(cls, v: str) -> str:
        if parse_duration(v).total_seconds() <= 0:
            raise ValueError(f'"{v}" must be longer than zero')
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f'"{v}" is not a valid name')
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        if scheme in ("msteams", "teams"):
            raise ValueError(
                "msteams:// was retired with Office 365 connectors and is not supported; "
                "create a Teams Workflow (Power Automate) and use workflows://HOST/ID/SIG/ "
                "or paste its https:// URL"
            )
        if not scheme:
            raise ValueError(f'"{v}" is not an apprise URL (expected scheme://...)')
        return v


class RouteConfig(_Model):
    targets: list[str]
    substances: list[str] | None = None
    kinds: list[str] | None = None
    regions: list[str] | None = None
    min_severity: Literal["info", "warning", "critical"] = "info"
    stop: bool = Field(False, description="Stop evaluating further routes when this one matches.")


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(text: str) -> tuple[int, int]:
    m = _HHMM_RE.match(text.strip())
    if not m:
        raise ValueError(f'"{text}" is not a time of day (use "HH:MM", e.g. "08:00")')
    return int(m.group(1)), int(m.group(2))


def parse_quiet_hours(text: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``"17:00-08:00"`` → ((17, 0), (8, 0)); the span may wrap past midnight."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f'"{text}" is not a span of hours (use e.g. "17:00-08:00")')
    a, b = parse_hhmm(parts[0]), parse_hhmm(parts[1])
    if a == b:
        raise ValueError(f'"{text}" is empty (start and end are the same)')
    return a, b


class DigestConfig(_Model):
    schedule: Literal["daily", "weekly"] = Field(
        "weekly", description="How often a digest of findings per substance is sent."
    )
    at: str = Field("08:00", description="Local time of day (general.timezone) it is sent.")
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        "mon", description="Day of a weekly digest."
    )
    targets: list[str] = Field(
        default_factory=list, description="Target names or tags that receive the digest."
    )

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        parse_hhmm(v)
        return v


class AlertingConfig(_Model):
    retry_backoff: str = Field("1m", description="First retry delay; doubles per attempt.")
    retry_max_backoff: str = Field("1h")
    expire_after: str = Field(
        "2d", description="Give up on a delivery after this long (counted from when it was due)."
    )
    send_timeout: str = Field("30s", description="Hard limit for one send to one target.")
    render_timeout: str = Field(
        "30s", description="Hard limit for building one message (template, chart); a "
        "message that takes longer fails with that reason instead of holding others back."
    )
    claim_lease: str = Field(
        "10m", description="How long a delivery being sent stays claimed; a send whose "
        "outcome could not be recorded is sent again only after its claim expires."
    )
    stall_after: str = Field(
        "15m", description="Health turns red when a due delivery has waited this long "
        "without an attempt (the outbox makes no progress)."
    )
    failing_after: int = Field(
        3, ge=1, description="Health shows a target as failing after this many failed "
        "attempts in a row."
    )
    max_retry_after: str = Field(
        "6h", description="The longest Retry-After a target may ask for; longer waits are cut "
        "to this."
    )
    notice_max_age: str = Field(
        "14d", description="Warning notices older than this when first seen are not alerted."
    )
    default_targets: list[str] | None = Field(
        None, description="Targets for alerts no route matches; all targets when unset."
    )
    send_resolved: bool = Field(
        False, description="Send a message when an episode (or a source failure) ends."
    )
    quiet_hours: str | None = Field(
        None,
        description='Local hours when only urgent alerts go out, e.g. "17:00-08:00"; '
        "others wait for the end of the quiet time.",
    )
    quiet_days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=list,
        description='Whole days that are quiet, e.g. ["sat", "sun"].',
    )
    urgent_severity: Literal["info", "warning", "critical"] = Field(
        "critical", description="Alerts of this severity or higher ignore quiet hours."
    )
    templates_dir: str | None = Field(
        None,
        description="Directory with templates overriding the built-in ones "
        "(email.html.j2, teams.json.j2); relative to the config file.",
    )
    chart: bool = Field(True, description="Attach a PNG chart of the series to email alerts.")
    digest: DigestConfig | None = Field(
        None, description="A daily or weekly summary of findings per substance."
    )

    @field_validator(
        "retry_backoff", "retry_max_backoff", "expire_after", "send_timeout", "notice_max_age",
        "render_timeout", "claim_lease", "stall_after", "max_retry_after",
    )
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str | None) -> str | None:
        if v is not None:
            parse_quiet_hours(v)
        return v

    @field_validator("quiet_days")
    @classmethod
    def _quiet_days(cls, v: list[str]) -> list[str]:
        if set(v) >= set(_WEEKDAYS):
            raise ValueError("every day is quiet: non-urgent alerts would never be sent")
        return v


class WebConfig(_Model):
    """``[web]``: the console (``warnd web``), see docs/web.md."""

    listen: str = Field(
        "127.0.0.1:8080",
        description="HOST:PORT the console listens on; `warnd web --listen` overrides it.",
    )
    base_url: str | None = Field(
        None,
        description='Public address of the console (e.g. "https://warnd.example.org"), used '
        "in links from messages (open, acknowledge, silence); no links when unset.",
    )
    secure_cookies: bool = Field(
        True,
        description="Session cookies only over HTTPS (Secure). Set false only for plain "
        "HTTP on localhost.",
    )
    session_lifetime: str = Field("12h", description="How long a login lasts.")
    link_lifetime: str = Field(
        "7d", description="How long an action link in a message stays valid."
    )
    login_attempts: int = Field(
        5, ge=1,
        description="Failed logins allowed per user name and address in 15 minutes; "
        "further attempts are refused until the window has passed.",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f'"{v}" is not an http(s):// address')
        return v.rstrip("/") if v else v

    @field_validator("session_lifetime", "link_lifetime")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class ConfigModel(_Model):
    general: GeneralConfig = Field(default_factory=GeneralConfig)
    detection: dict[str, Any] = Field(default_factory=dict)
    substances: dict[str, SubstanceConfig] = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(default_factory=list)
    targets: list[TargetConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    web: WebConfig = Field(default_factory=WebConfig)


@dataclass(frozen=True)
class Config:
    """A validated configuration plus where it came from."""

    model: ConfigModel
    path: Path
    base_dir: Path

    @property
    def general(self) -> GeneralConfig:
        return self.model.general

    @property
    def substances(self) -> dict[str, SubstanceConfig]:
        return self.model.substances

    @property
    def sources(self) -> list[SourceConfig]:
        return self.model.sources

    @property
    def targets(self) -> list[TargetConfig]:
        return self.model.targets

    @property
    def routes(self) -> list[RouteConfig]:
        return self.model.routes

    @property
    def alerting(self) -> AlertingConfig:
        return self.model.alerting

    @property
    def web(self) -> WebConfig:
        return self.model.web

    @property
    def state_dir(self) -> Path:
        env = os.environ.get("WARND_STATE_DIR") or os.environ.get("STATE_DIRECTORY")
        d = Path(env.split(":")[0]) if env else self.model.general.state_dir
        return d if d.is_absolute() else (Path.cwd() / d)

    def _find_source(self, name: str) -> SourceConfig | None:
        # looked up by name in a dict made once (a detect pass asks for every series:
        # a scan of the list cost 25 s a week at 2,500 sources and 100,000 series)
        sources = self.sources
        index = self.__dict__.get("_source_index")
        if index is None or index[0] is not sources or index[1] != len(sources):
            index = (sources, len(sources), {s.name: s for s in reversed(sources)})
            object.__setattr__(self, "_source_index", index)  # the first of a name wins
        return index[2].get(name)

    def watched_sources(self) -> frozenset[str]:
        """The sources warnd polls and judges: configured and enabled. The series of a
        source taken out of the config (or paused) stay in the store, no longer judged,
        so an episode open there would stay open for good: it does not hold its
        substance's episode open, count as a source in a message, or stand in the
        digest (:mod:`warnd.alerting.decide`, :mod:`warnd.alerting.digest`). Made once
        (a round of the episode rules asks, at 2,500 sources)."""
        sources = self.sources
        made = self.__dict__.get("_watched")
        if made is None or made[0] is not sources or made[1] != len(sources):
            made = (sources, len(sources), frozenset(s.name for s in sources if s.enabled))
            object.__setattr__(self, "_watched", made)
        return made[2]

    def substance_specs(self, only: list[str] | None = None) -> tuple[Any, ...]:
        """The monitored substances (``only`` these, when given) as the feeds see them
        (:class:`feeds.base.SubstanceSpec`)."""
        from feeds.base import SubstanceSpec

        return tuple(
            SubstanceSpec(id=sid, label=self.substance_label(sid), names=tuple(sc.names),
                          slang=tuple(sc.slang), slang_needs_context=sc.slang_needs_context,
                          exclude=tuple(sc.exclude), context=tuple(sc.context))
            for sid, sc in self.substances.items() if only is None or sid in only)

    def source(self, name: str) -> SourceConfig:
        s = self._find_source(name)
        if s is None:
            raise KeyError(name)
        return s

    def source_label(self, name: str, lang: str | None = None) -> str:
        """A source's name for people: its ``label`` (in ``lang``, by default the
        configured language), else its name in words."""
        s = self._find_source(name)
        label = in_language(s.label, lang or self.general.language) if s is not None else None
        if label:
            return label
        return name.replace("-", " ").replace("_", " ").capitalize() if name else name

    def source_unit(self, name: str, lang: str | None = None) -> str | None:
        """What a count of the source is, in words (``unit``, in ``lang``), when the config
        says."""
        s = self._find_source(name)
        return in_language(s.unit, lang or self.general.language) if s is not None else None

    def substance_label(self, sid: str, lang: str | None = None) -> str:
        """A substance's name for people: its ``label`` (in ``lang``, by default the
        configured language), else its id."""
        sc = self.substances.get(sid)
        return (in_language(sc.label, lang or self.general.language) if sc else None) or sid

    def resolve_location(self, location: str) -> str:
        """Relative paths are relative to the config file's directory."""
        if "://" in location or Path(location).is_absolute():
            return location
        return str(self.base_dir / location)

    def detection_params(self, substance: str, source: str | None = None) -> Any:
        """The detection params of a substance's series from a source: the defaults,
        overridden by ``[detection]``, then the substance's and the source's own tables.
        Made once per distinct pair of tables and shared (they are frozen): a detect
        pass asks for every source and substance."""
        from detectors.params import DetectionParams

        sc = self.substances.get(substance)
        own = sc.detection if sc and sc.detection else None
        src = self._find_source(source) if source is not None else None
        src_own = src.detection if src is not None and src.detection else None
        cache = self.__dict__.get("_params_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_params_cache", cache)
        # the tables belong to this config and live as long as it: their ids stay theirs
        key = (id(own) if own else None, id(src_own) if src_own else None)
        params = cache.get(key)
        if params is None:
            tables = [t for t in (self.model.detection, own, src_own) if t]
            params = cache[key] = DetectionParams().merged(*tables)
        return params


def find_config_path(cli_path: str | os.PathLike[str] | None) -> Path:
    """``--config``, then ``$WARND_CONFIG``, then ``./config.toml``, then ``/etc/warnd``."""
    if cli_path:
        return Path(cli_path)
    env = os.environ.get("WARND_CONFIG")
    if env:
        return Path(env)
    for p in DEFAULT_PATHS:
        if Path(p).exists():
            return Path(p)
    return Path(DEFAULT_PATHS[0])


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _format_errors(err: ValidationError, data: Mapping[str, Any]) -> list[str]:
    msgs = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _loc(loc)
        typ = e["type"]
        msg = e["msg"].removeprefix("Value error, ")
        if typ == "extra_forbidden":
            msgs.append(f"{path}: unknown key")
        elif typ == "missing":
            msgs.append(f"{path}: required key is missing")
        elif typ in ("literal_error", "enum"):
            msgs.append(f"{path}: {e['input']!r} is not allowed; {msg.lower()}")
        elif typ == "value_error":
            msgs.append(f"{path}: {msg}")
        elif typ == "dict_type" and isinstance(e.get("input"), list) and len(loc) == 1:
            # `[[substances]]` where a table of tables is asked for
            msgs.append(f"{path}: give each as a table of its own, [{path}.<id>] (an "
                        f"array of tables, [[{path}]], was given)")
        elif typ == "list_type" and isinstance(e.get("input"), dict) and len(loc) == 1:
            # `[sources]` where an array of tables is asked for
            msgs.append(f"{path}: give each as [[{path}]] (a single table, [{path}], "
                        "was given)")
        else:
            msgs.append(f"{path}: {msg} (got {e.get('input')!r})")
    return msgs


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(path)) from None
    except OSError as e:
        raise ConfigError(f"cannot read config file: {e.strerror}", path=str(path)) from None
    except ValueError:  # the operating system takes no such name
        raise ConfigError("cannot read config file: its name holds a NUL character",
                          path=repr(str(path))) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte {e.start})", path=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", path=str(path)) from None
    except RecursionError:
        raise ConfigError("not valid TOML: arrays or tables nested too deeply",
                          path=str(path)) from None


def _merge_include(base: dict[str, Any], inc: dict[str, Any]) -> None:
    for k, v in inc.items():
        if k in base and isinstance(base[k], dict) and isinstance(v, dict):
            _merge_include(base[k], v)
        elif k in base and isinstance(base[k], list) and isinstance(v, list):
            base[k] = base[k] + v
        elif k in base:
            raise ConfigError(f"{k}: defined both in the main file and in an include")
        else:
            base[k] = v


def load_config(
    path: str | os.PathLike[str] | None = None, *, light: bool = False
) -> Config:
    """Read, merge includes, and validate; raise :class:`ConfigError` with every problem.

    ``light=True`` leaves out the checks that need the code of other layers: asking
    apprise whether each target's URL is usable (it loads all of its plugins, about
    half a second) and each source's kind-specific options (they load that kind's
    parsers). For commands that only read the store or a CSV (``warnd status``,
    ``warnd report``, ``warnd backtest --observations``, ``warnd changepoints``);
    ``check-config``, ``run`` and the rest check everything.
    """
    p = find_config_path(path)
    data = _read_toml(p)
    base_dir = p.resolve().parent
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise ConfigError("include: expected a list of file names", path=str(p))
    wrong = [f"include[{i}]: expected a file name, got {inc!r}"
             for i, inc in enumerate(includes) if not isinstance(inc, str) or not inc]
    if wrong:
        raise ConfigError(wrong, path=str(p))
    for inc in includes:
        ip = Path(inc) if Path(inc).is_absolute() else base_dir / inc
        try:
            _merge_include(data, _read_toml(ip))
        except ConfigError as e:
            raise ConfigError(e.messages, path=e.path or str(ip)) from None
    return validate_config(data, path=p, base_dir=base_dir, light=light)


def config_files(path: Path) -> list[Path]:
    """The config file and the files it includes (those it names now; none when it does
    not read): what an edit of the config changes."""
    try:
        includes = _read_toml(path).get("include", [])
    except ConfigError:
        includes = []
    includes = [includes] if isinstance(includes, str) else includes
    base = path.resolve().parent
    return [path] + [Path(i) if Path(i).is_absolute() else base / i
                     for i in (includes if isinstance(includes, list) else [])
                     if isinstance(i, str)]


def validate_config(data: dict[str, Any], *, path: Path, base_dir: Path,
                    light: bool = False) -> Config:
    try:
        model = ConfigModel.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, data), path=str(path)) from None
    msgs = _cross_check(model, light=light)
    if msgs:
        raise ConfigError(msgs, path=str(path))
    return Config(model=model, path=path, base_dir=base_dir)


def _cross_check(model: ConfigModel, *, light: bool = False) -> list[str]:
    """Checks that span sections: kinds, options, names, tags, detection keys."""
    from pydantic import ValidationError as VE

    from feeds.registry import FEEDS

    msgs: list[str] = []
    if not model.general.allow_empty:
        if not model.sources:
            msgs.append("sources: no source is configured, so nothing would be monitored "
                        "(add [[sources]], or set general.allow_empty = true on purpose)")
        if not model.targets:
            msgs.append("targets: no target is configured, so no alert would reach anyone "
                        "(add [[targets]], or set general.allow_empty = true on purpose)")
    seen: set[str] = set()
    for i, s in enumerate(model.sources):
        where = f"sources[{i}]"
        if s.name in seen:
            msgs.append(f'{where}.name: "{s.name}" is used by another source')
        seen.add(s.name)
        if s.kind not in FEEDS:
            msgs.append(
                f'{where}.kind: "{s.kind}" is not a source kind (known: {", ".join(sorted(FEEDS))})'
            )
        elif not light:
            cls = FEEDS[s.kind]
            try:
                cls.Options.model_validate(s.options_dict)
            except VE as e:
                for m in _format_errors(e, s.options_dict):
                    msgs.append(f"{where}.{m}")
        for sub in s.substances or []:
            if sub not in model.substances:
                msgs.append(f'{where}.substances: "{sub}" is not a configured substance')
        msgs += _unknown_substance_ids(s.options_dict, set(model.substances), where)
        msgs += _check_detection(s.detection, f"{where}.detection")
    msgs += _check_detection(model.detection, "detection")
    for sid, sc in model.substances.items():
        if not _NAME_RE.match(sid):
            msgs.append(f'substances.{sid}: "{sid}" is not a valid id (lower-case, digits, -_.)')
        if not sc.names:
            msgs.append(f"substances.{sid}.names: give at least one name")
        msgs += _check_detection(sc.detection, f"substances.{sid}.detection")
    tnames: set[str] = set()
    for i, t in enumerate(model.targets):
        if t.name in tnames:
            msgs.append(f'targets[{i}].name: "{t.name}" is used by another target')
        tnames.add(t.name)
        if not light:
            msgs += _check_apprise_url(t, f"targets[{i}]")
    tags = {tag for t in model.targets for tag in t.tags}
    for i, r in enumerate(model.routes):
        for tgt in r.targets:
            if tgt not in tnames and tgt not in tags:
                msgs.append(
                    f'routes[{i}].targets: "{tgt}" matches no target name or tag '
                    f"(targets: {', '.join(sorted(tnames)) or 'none'})"
                )
        for sub in r.substances or []:
            if sub not in model.substances:
                msgs.append(f'routes[{i}].substances: "{sub}" is not a configured substance')
    for tgt in model.alerting.default_targets or []:
        if tgt not in tnames and tgt not in tags:
            msgs.append(f'alerting.default_targets: "{tgt}" matches no target name or tag')
    if model.alerting.digest is not None:
        if not model.alerting.digest.targets:
            msgs.append("alerting.digest.targets: give at least one target name or tag")
        for tgt in model.alerting.digest.targets:
            if tgt not in tnames and tgt not in tags:
                msgs.append(f'alerting.digest.targets: "{tgt}" matches no target name or tag')
    return msgs


#: Source options that map a name in the data to a substance id (the values are ids).
SUBSTANCE_MAPS = ("terms", "substance_aliases", "substance_columns")


def _unknown_substance_ids(options: dict[str, Any], known: set[str], where: str) -> list[str]:
    """A mapping to a substance id that is not configured would store data under a
    substance nobody monitors: an error, with the closest configured id as a hint."""
    import difflib

    msgs = []
    for key in SUBSTANCE_MAPS:
        mapping = options.get(key)
        if not isinstance(mapping, dict):
            continue
        for name, sid in mapping.items():
            if isinstance(sid, str) and sid not in known:
                close = difflib.get_close_matches(sid, sorted(known), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                msgs.append(f'{where}.{key}.{name}: "{sid}" is not a configured substance{hint}')
    return msgs


def _check_detection(table: dict[str, Any], where: str) -> list[str]:
    if not table:
        return []
    from detectors.params import DetectionParams

    try:
        DetectionParams().merged(table)
    except ValidationError as e:
        return [f"{where}.{m}" for m in _format_errors(e, table)]
    return []


def _check_apprise_url(t: TargetConfig, where: str) -> list[str]:
    from warnd.alerting.send import refusal_reason, target_url

    try:
        url = target_url(t, check_secret=False)
    except ConfigError as e:
        return [f"{where}: {m}" for m in e.messages]
    why = refusal_reason(url)
    if why is not None:
        return [f'{where}.url: target "{t.name}" cannot be used: {why} (see docs/alerting.md)']
    return []
