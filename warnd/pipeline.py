"""The daemon's work as plain functions: poll a source, detect, decide, dispatch.

The scheduler and ``warnd run --once`` call the same three stages:

``poll(source)``
    fetch → parse → ingest (idempotent) → derive item counts → the series touched
``detect(series)``
    replay every period not yet judged through the detectors and the episode
    rules (the same ones ``warnd backtest`` applies) → findings → alerts in the outbox
``dispatch()``
    send due deliveries, one target at a time, and record each outcome

Every stage opens its own :class:`~warnd.store.Store`, so stages can run in
scheduler threads. A failing source is logged with its name and recorded in its
health; it never stops another source.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from detectors.base import Finding, replaced, series_key
from detectors.episodes import episode_grew
from feeds.base import Observation, Problem, SubstanceSpec
from feeds.matching import option_change, same_reading, with_option
from feeds.registry import FEEDS
from warnd.alerting import decide, outbox
from warnd.config import Config, parse_duration
from warnd.errors import ConfigError, StoreError, WarndError
from warnd.logs import redact
from warnd.store import (Pending, Shares, Store, Whole, iso, pack_series, pack_state,
                         readable_states, store_problem, utcnow)

#: Series whose detector states one detect pass holds unpacked at a time (memory: a
#: 100,000-series week peaked at 229-231 MiB with 512 against 273-286 with 2,048, in the
#: same time; docs/load-history.md).
ADVANCE_CHUNK = 512
#: Fewer series than this in a detect pass's chunk are stepped one state each: the
#: array path's fixed cost (reading, stacking and packing a group) exceeds what it saves
#: on a handful of series, such as the two a substance has in one source's poll.
ARRAY_MIN = 16
#: A detect pass over at most this many series (a poll's own pass) advances them all in
#: one batch step, then decides substance by substance; a larger one goes a substance
#: at a time (:meth:`Pipeline._detect_together`).
TOGETHER_MAX = 512
#: A detect pass over at least this many series is split by substance over
#: ``general.detect_workers`` processes; a smaller one gains less than starting a
#: process costs (about a second: Python, numpy and the detectors imported anew).
PARALLEL_MIN = 20_000
#: A detect pass over at least this many series says at INFO level when it starts and
#: ends and, every :data:`PROGRESS_EVERY` seconds between, how far it is (a first pass
#: over 100,000 series takes minutes); smaller ones, such as a poll's own, only at DEBUG.
PROGRESS_MIN = 5_000
PROGRESS_EVERY = 30.0
#: Set in a worker process of a split pass (:func:`_worker_start`): it judges its own
#: substances in one process and splits nothing further.
_IN_WORKER = False
#: What a stored detector state that unpacked but does not hold together raises.
BAD_STATE = (KeyError, ValueError, TypeError, IndexError, AttributeError)

log = logging.getLogger("warnd.pipeline")

SeriesKey = tuple[str, str, str, str]  # source, substance, region, metric


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Python's cycle collector leaves the objects that existed before this block alone
    until it ends (``gc.freeze``, then ``gc.unfreeze``).

    A detect pass makes many short-lived containers (a state's dict, its fits, a
    period's findings). Every few hundred series that outlive a young collection, the
    collector makes a full one, which walks every tracked object of the process: the
    modules, the config (at 100,000 series its 2,500 sources) and whatever else is
    alive, 67-92 ms each here (a steady 1,000-series pass made one: a tenth of its
    time). Frozen, those objects are skipped; what the pass makes is collected as
    usual, and after the block the frozen objects are collected as before, so nothing
    is kept that would otherwise be freed."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class _Planned(NamedTuple):
    """A series a detect pass judges, and what its episode state says of it."""

    key: SeriesKey
    src: Any
    params: Any
    scope: str
    stored: Any
    tracker: Any
    last_done: date | None
    revised: bool
    version: int


@dataclass
class _Advancing:
    """A series judged incrementally in :meth:`Pipeline._advance_all`."""

    entry: tuple[SeriesKey, Any, Any, Any]  # key, source, params, last judged period
    state: Any  # detectors.engine.SeriesState
    tail: Any  # detectors.base.Series: the periods after the state's last one
    before: date  # the stored period just before them
    per_period: list[list[Finding]] = field(default_factory=list)
    failed: bool = False  # the state could not take a period: replayed instead

    @property
    def key(self) -> SeriesKey:
        return self.entry[0]


#: Source kinds whose fetched documents are kept under <state_dir>/raw/<source>/.
KEEP_RAW = ("overdosefare",)
#: How a feed's problem of entries it showed between two polls and nobody read begins.
MISSED = "entries may have been missed: "
#: The problems a poll records at a feed's location that are of its polls, not of the
#: document (by how their message begins): a later reading of the document, which ends
#: the document's own, leaves them listed.
POLL_PROBLEMS = (MISSED,)
#: A round of sends that sent nothing (not run: the store unusable, the cycle stopped).
NO_DELIVERIES = {"delivered": 0, "retrying": 0, "expired": 0, "failed": 0}


@dataclass
class PollResult:
    source: str
    ok: bool
    documents: int = 0
    skipped: int = 0
    observations: int = 0
    items: int = 0
    problems: int = 0
    error: str | None = None
    series: set[SeriesKey] = field(default_factory=set)


class Pipeline:
    """Wires config, fetcher, feeds, store, detectors and alerting together."""

    def __init__(
        self,
        config: Config,
        *,
        fetcher: Any = None,
        clock: Callable[[], datetime] = utcnow,
        send: Callable[..., Any] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._fetcher = fetcher
        self._send = send
        #: set when the service stops: a dispatch round begins no more sends
        self.stopping = stopping or threading.Event()
        #: series replayed in this detect pass, by the reasons that come for many at once
        self._replayed_for: Counter[str] = Counter()
        #: each source's feed, made once (feeds keep no state between documents; a
        #: reloaded config makes a new pipeline)
        self._feeds: dict[str, Any] = {}
        self._specs: dict[tuple[str, ...] | None, tuple[SubstanceSpec, ...]] = {}
        #: whether the stored items were matched with this config's terms (once: the
        #: first poll of a source of items does it, polls at the same time wait for it)
        self._terms_matched = False
        #: the substances whose detection failed in a :meth:`run_once` (None outside one)
        self._detect_failed: list[str] | None = None
        self._terms_lock = threading.Lock()
        self._read_with: dict[str, str] = {}  # per source of tables: _source_terms

    # -- helpers --------------------------------------------------------------------
    def open_store(self) -> Store:
        return Store.in_dir(self.config.state_dir,
                            timeout=interval_seconds(self.config.general.store_busy_timeout))

    def prepare_store(self) -> None:
        """At start, holding the state lock: open (migrate) and check the store, free
        the claims of processes that ended. A missing, empty or damaged store raises
        :class:`~warnd.errors.StoreError`: warnd refuses to run on it."""
        store = self.open_store()
        try:
            store.quick_check()  # a damaged store: refuse to run (StoreError)
            outbox.free_dead_claims(store)
        except sqlite3.Error as e:  # e.g. locked: the claims expire by themselves
            log.error("claims of ended processes not freed: %s",
                      store_problem(e, self.config.state_dir))
        finally:
            store.close()

    @contextmanager
    def session(self) -> Iterator[Store]:
        """A store connection for several stages in a row (closed at the end), its WAL
        checkpointed on a thread of its own meanwhile (:mod:`warnd.checkpointer`; the
        one already running in this process, such as the daemon's, if any)."""
        with self._store(None) as store:
            store.checkpoint_in_background()
            yield store

    @contextmanager
    def _store(self, store: Store | None) -> Iterator[Store]:
        """The caller's store (one connection for a whole cycle), or a fresh one
        closed afterwards (a scheduler thread's own)."""
        if store is not None:
            yield store
            return
        own = self.open_store()
        try:
            yield own
        finally:
            own.close()

    @property
    def fetcher(self) -> Any:
        if self._fetcher is None:
            from feeds.fetch import Fetcher

            g = self.config.general
            self._fetcher = Fetcher(
                timeout=interval_seconds(g.fetch_timeout),
                total_deadline=interval_seconds(g.fetch_deadline),
                max_bytes=g.fetch_max_bytes,
                retries=g.fetch_retries,
                max_redirects=g.fetch_max_redirects,
            )
        return self._fetcher

    def substance_specs(self, only: list[str] | None = None) -> tuple[SubstanceSpec, ...]:
        """The monitored substances (``only`` these, when given) as the feeds see them;
        one list for every source that watches the same ones (at 100,000 series, 2,500
        sources' feeds kept their own lists of 20: about 10 MB)."""
        key = None if only is None else tuple(only)
        specs = self._specs.get(key)
        if specs is None:
            specs = self._specs[key] = self.config.substance_specs(only)
        return specs

    def build_feed(self, source_name: str) -> Any:
        """The source's feed (its adapter with its options and substances), made on the
        source's first poll and kept for the next."""
        feed = self._feeds.get(source_name)
        if feed is None:
            src = self.config.source(source_name)
            cls = FEEDS[src.kind]
            feed = self._feeds[source_name] = cls(
                name=src.name,
                options=cls.Options.model_validate(src.options_dict),
                substances=self.substance_specs(src.substances),
                region=src.region,
            )
        return feed

    # -- stage 1: poll ------------------------------------------------------------------
    def poll(self, source_name: str, *, store: Store | None = None) -> PollResult:
        try:
            with self._store(store) as st:
                return self._poll(st, source_name)
        except StoreError as e:  # the store cannot be opened: one line, no traceback
            log.error("source=%s poll not stored: %s", source_name, e)
            return PollResult(source=source_name, ok=False, error=str(e))

    def _poll(self, store: Store, source_name: str) -> PollResult:
        src = self.config.source(source_name)
        res = PollResult(source=source_name, ok=False)
        now = self.clock()
        log.debug("source=%s poll started", source_name)
        try:
            feed = self.build_feed(source_name)
            items_kind = getattr(feed, "produces", "observations") == "items"
            # a source of tables or exports read before with other options or other
            # terms of its substances: its documents are all read again, so that its
            # history is read as it is read now (a file is otherwise read once)
            terms = None if items_kind else self._source_terms(src)
            kept = None if terms is None else store.source_terms(source_name)
            # a count table whose files add up: each file's share of its periods is kept
            shares = (Shares(feed.options.aggregate, feed.options.period)
                      if getattr(feed.options, "files", None) == "add" else None)
            # shares kept with another aggregate: a source adding its files up takes them
            # as the new one now (nothing read again for it); one that no longer does at
            # the end of the poll, which reads its files again as whole values
            convert = None
            if kept is not None:
                self._refuse_new_period(store, source_name, feed, kept)
                was, agg = option_change(feed.options, kept, "aggregate")
                if was != agg and store.has_shares(source_name):
                    convert = (was, agg)
                    if shares:
                        kept = with_option(kept, "aggregate", src.options_dict.get("aggregate"))
                        store.convert_shares(source_name, was, agg, kept, period=shares.period)
                        convert = None
                if shares and option_change(feed.options, kept, "files")[0] != "add":
                    # switched back to adding up: the periods given whole values meanwhile
                    # are stored over the shares kept again
                    store.shares_all_due(source_name, shares.period)
            again = kept is not None and not same_reading(kept, terms)
            if again:
                log.warning("source=%s read with other options or substance terms than "
                            "before: every document read again", source_name)
            state = store.source_state(source_name)
            location = self.config.resolve_location(src.location)
            # a count table read from one file or address: its new version is the whole
            # table, and a period it no longer gives inside its span is withdrawn
            from feeds.fetch import single_document

            one = single_document(location)
            whole = (shares is None and getattr(feed.options, "removed_rows", None)
                     == "withdraw" and one)
            known = {} if again else store.document_stats(source_name,
                                                          shared=shares is not None)
            etag, last_mod = state.get("etag"), state.get("last_modified")
            if again or ((etag or last_mod) and not store.location_read(source_name,
                                                                       location)):
                # validators of another address (the source was moved): a 304 there
                # would say nothing about this one, whose document was never read; or
                # of a document read with other terms, to be read again
                etag = last_mod = None
            try:
                docs = self.fetcher.fetch(location, etag=etag, last_modified=last_mod,
                                          known=known)
            except Exception as e:  # FetchError and anything a transport raises
                res.error = _one_line(e)
                store.record_poll(source_name, ok=False, error=res.error, now=now)
                log.error("source=%s poll failed: %s", source_name, res.error)
                self._source_health(store, source_name, now)
                return res
            etag = last_mod = None
            stats: list[tuple[str, str]] = []  # files ingested (or found so) this poll
            # whether a document was read as one of the source's kind, so that its
            # weeks without items are known (one ingested before was: see `unread`)
            read = False
            reach = None  # the newest entry of the feed documents read now, matched or not
            floor = None  # and their oldest
            for doc in docs:
                unreadable = getattr(doc, "error", None)
                if unreadable:  # a file of a folder that cannot be read: the others are
                    store.ingest(source_name, location=doc.location, sha256=None,
                                 observations=(), items=(),
                                 problems=[Problem(doc.location, unreadable)], now=now)
                    log.error("source=%s document=%s %s", source_name, doc.location,
                              unreadable)
                    res.problems += 1
                    continue
                etag, last_mod = doc.etag or etag, doc.last_modified or last_mod
                if doc.not_modified or getattr(doc, "unchanged", False):
                    res.skipped += 1  # a file with the version last ingested is not read
                    read = True
                    continue
                stat = getattr(doc, "stat", None)
                if not again and (
                        store.shares_read(source_name, doc.location, doc.sha256) if shares
                        else store.document_seen(source_name, doc.location, doc.sha256)):
                    res.skipped += 1
                    read = True
                    if stat and known.get(doc.location) != stat:
                        stats.append((doc.location, stat))
                    continue
                try:
                    extra = ({"content_type": getattr(doc, "content_type", None)}
                             if getattr(feed, "takes_content_type", False) else {})
                    parsed = feed.parse(doc.content, location=doc.location, fetched_at=now,
                                        **extra)
                except Exception as e:  # a parser bug or hostile input: report, go on
                    msg = f"cannot parse: {_one_line(e)}"
                    store.ingest(source_name, location=doc.location, sha256=None,
                                 observations=(), items=(),
                                 problems=[Problem(doc.location, msg)], now=now)
                    log.error("source=%s document=%s %s", source_name, doc.location, msg)
                    res.problems += 1
                    # its validators are not kept, so that the next poll asks for it
                    # again rather than hear "not modified" (as a file is read again)
                    etag = last_mod = None
                    continue
                problems = list(parsed.problems)
                obs = self._prepare_observations(store, src, parsed.observations, problems,
                                                 doc.location)
                # a document none of which was read (a web page where a feed was
                # expected) is not marked ingested: it is read again at the next poll,
                # as one whose parser failed, and its validators are not kept
                unread = any(p.fatal for p in parsed.problems) and not (
                    parsed.items or obs)
                # a file of a source adding its files up with the same bytes as another
                # one's version kept (a download saved twice, a transfer retried under
                # another name) is a copy of it: counted once, and said so
                copy = (store.kept_copy(source_name, doc.location, doc.sha256)
                        if shares and obs and not unread else None)
                if copy:
                    problems.insert(0, Problem(doc.location, _copy_problem(doc.location, *copy)))
                r = store.ingest(
                    source_name, location=doc.location,
                    sha256=None if unread else doc.sha256, observations=obs,
                    items=parsed.items, problems=problems, now=now,
                    shares=None if unread else shares, copy_of=copy[1] if copy else None,
                    whole=Whole(frozenset(parsed.unread_periods))
                    if whole and parsed.unread_periods is not None else None,
                    # a document read (a file of a folder, a feed, a single file): its
                    # problems are this reading's, not the polls' at its location
                    read_anew=not unread, lasting=POLL_PROBLEMS,
                )
                if r["observations_withdrawn"]:
                    gone = r["observations_withdrawn"]
                    log.warning(
                        "source=%s %d value(s) no longer given by %s withdrawn: %s",
                        source_name, len(gone), doc.location,
                        ", ".join(f"{g[1]}{'/' + g[2] if g[2] else ''} {g[3]} {g[4]} (was "
                                  f"{g[5]:g})" for g in gone[:10])
                        + (", ..." if len(gone) > 10 else ""))
                if unread:
                    etag = last_mod = None
                else:
                    read = True
                    if parsed.newest is not None:
                        reach = max(reach or parsed.newest, parsed.newest)
                    if parsed.oldest is not None:
                        floor = min(floor or parsed.oldest, parsed.oldest)
                    if stat:
                        stats.append((doc.location, stat))
                res.documents += 1
                if src.kind in KEEP_RAW:
                    self._keep_raw(source_name, doc)
                res.observations += (r["observations_new"] + r["observations_revised"]
                                     + len(r["observations_withdrawn"]))
                res.items += r["items_new"]
                res.problems += len(problems)
                res.series.update(tuple(k) for k in r["series_touched"])
                for p in problems[:20]:
                    log.warning("source=%s problem at %s: %s", source_name, p.where, p.message)
                if r["items_new"]:  # only the new ones: one already stored is known by
                    # its stored key, which a parsed item's may not be (a changed link)
                    added = set(r["items_added"])
                    self._notice_alerts(store, src,
                                        [it for it in parsed.items if it.key in added], now)
                # notices edited to name another substance (parsed key -> stored key)
                renamed = dict(r["notices_renamed"])
                for it in (it for it in parsed.items if it.key in renamed):
                    decide.enqueue_renamed_notice(self.config, store, src,
                                                  replace(it, key=renamed[it.key]), now=now)
            if shares:
                # copies counted as shares of their own before copies were found
                for dup, of in store.fold_copies(source_name, shares.period):
                    msg = _copy_problem(dup, of, of, before=True)
                    store.ingest(source_name, location=dup, sha256=None, observations=(),
                                 items=(), problems=[Problem(dup, msg)], now=now)
                    log.warning("source=%s problem at %s: %s", source_name, dup, msg)
                    res.problems += 1
                # the periods whose shares changed and that have ended
                n, touched = store.settle_shares(source_name, shares, now=now)
                res.observations += n
                res.series.update(tuple(k) for k in touched)
            if items_kind:
                self._match_terms(store, now)
                self._missing_notice_alerts(store, src, now)
                subs = [s.id for s in self.substance_specs(src.substances)]
                # a source keeping only the items that name a watched substance cannot
                # count a substance again with terms added since: afresh from then on
                afresh = None if _keeps_all(feed) else store.counted_from()
                # a feed back from failed polls or a pause showing only entries newer than
                # its last read: the weeks between are not known to be without articles
                # (a folder's files keep what came meanwhile)
                if single_document(location) and self._missed_polls(src, state, now):
                    store.note_unread(source_name, since=state.get("last_success_at"),
                                      oldest=floor, region=src.region)
                elif single_document(location) and (msg := _turnover_gap(
                        src, state.get("last_success_at"), floor)):
                    # polled on time, but its entries turn over faster than it is polled:
                    # what it showed between two polls went unread (the counts stay)
                    store.ingest(source_name, location=location, sha256=None,
                                 observations=(), items=(),
                                 problems=[Problem(location, msg)], now=now)
                    log.warning("source=%s problem at %s: %s", source_name, location, msg)
                    res.problems += 1
                for kind in ("article", "notice"):
                    for k in store.derive_item_counts(
                        source_name, subs, region=src.region, now=now, kind=kind, read=read,
                        reach=reach, counted_from=afresh,
                    ):
                        res.series.add(tuple(k))
            store.record_poll(source_name, ok=True, etag=etag, last_modified=last_mod, now=now,
                              stats=stats)
            if convert and terms is not None:
                store.convert_shares(source_name, *convert, terms, period=None)
            elif terms is not None and kept != terms:
                store.keep_source_terms(source_name, terms)
            self._source_health(store, source_name, now)
            res.ok = True
            log.info(
                "source=%s polled: %d new documents, %d unchanged, %d observations, %d items, "
                "%d problems", source_name, res.documents, res.skipped, res.observations,
                res.items, res.problems,
            )
            return res
        except sqlite3.Error as e:
            res.error = store_problem(e, self.config.state_dir)
            log.error("source=%s poll not stored: %s", source_name, res.error)
            return res
        except WarndError as e:
            res.error = str(e)
            log.error("source=%s %s", source_name, e)
            try:
                store.record_poll(source_name, ok=False, error=res.error, now=now)
                self._source_health(store, source_name, now)
            except Exception:
                pass
            return res

    def _match_terms(self, store: Store, now: datetime) -> None:
        """The stored items matched again for each substance whose matching terms (names,
        slang, exclude, context) changed since they were recorded: by a reload, or in a
        config edited while warnd was stopped (:meth:`Store.match_terms`). Once per
        config, at the first poll of a source of items; each source's counts are then
        counted again at its poll, a revision judged as any other."""
        if self._terms_matched:
            return
        with self._terms_lock:
            if not self._terms_matched:
                self._match_terms_now(store, now)
                self._terms_matched = True

    def _match_terms_now(self, store: Store, now: datetime) -> None:
        from feeds.matching import SubstanceMatcher, terms_of, widened

        specs = {s.id: s for s in self.substance_specs()}

        def matcher(changed: list[str]) -> Callable[[str, str, str], Collection[str]]:
            by_source: dict[str, Callable[[str], tuple[str, ...]]] = {}

            def names(source: str, title: str, summary: str) -> Collection[str]:
                match = by_source.get(source)
                if match is None:
                    watched = self._watched_by(source)
                    match = by_source[source] = SubstanceMatcher(
                        [specs[s] for s in changed if watched is None or s in watched]).match
                return match(f"{title} \n {summary}")

            return names

        def losable(source: str, summary: str, substance: str) -> bool:
            if len(summary) >= SUMMARY_KEPT:
                return False  # cut short when stored: the rest may have named it
            watched = self._watched_by(source)
            if watched is not None and substance not in watched:
                return False  # not the source's to match (no longer)
            try:
                fields = self.config.source(source).options_dict.get("match_fields", ())
            except KeyError:
                return True
            return "tags" not in fields  # the tags matched are not kept

        changes = store.match_terms({sid: terms_of(s) for sid, s in specs.items()}, now=now,
                                    widened=widened, matcher=matcher, losable=losable)
        for sub, (added, dropped, wide) in changes.items():
            log.warning("substance=%s matching terms changed: the stored items matched again "
                        "(%d now name it, %d no longer do); each source's counts of it are "
                        "counted again at its next poll", sub, added, dropped)
            partial = [s.name for s in self.config.sources if s.enabled
                       and FEEDS[s.kind].produces == "items"
                       and (s.substances is None or sub in s.substances)
                       and not _keeps_all(self.build_feed(s.name))]
            if wide and partial:
                log.warning("substance=%s counted afresh from the week of %s by %s: these "
                            "sources keep only the items that name a watched substance, so "
                            "the items naming it only by the new terms cannot be matched "
                            "again", sub, now.date() - timedelta(days=now.weekday()),
                            ", ".join(partial))

    @staticmethod
    def _refuse_new_period(store: Store, source_name: str, feed: Any, kept: str) -> None:
        """A source whose files' shares are kept (``files = "add"``, now or before) is
        not read with another ``period``: its stored values and shares are of the old
        periods, and the new ones would be added to the same series (weeks and months
        mixed, a file no longer in the folder still giving its share of a week to the
        month beginning that Monday)."""
        was, now = option_change(feed.options, kept, "period")
        if was != now and store.has_shares(source_name):
            raise ConfigError(
                f"not polled: its period is {now!r}, but its files' shares were kept by "
                f"{was!r}, and the two would mix in one series; put period = {was!r} "
                "back, or give the source a new name to count its files afresh by "
                f"{now!r} (docs/sources.md, Files that add up)")

    def _source_terms(self, src: Any) -> str:
        """What a source of tables or exports is read with: its kind's options (aliases,
        columns, Trends terms ...) and its substances' ids, labels and terms."""
        terms = self._read_with.get(src.name)
        if terms is None:
            from feeds.matching import read_with

            terms = self._read_with[src.name] = read_with(
                src.kind, src.options_dict, self.substance_specs(src.substances))
        return terms

    def _watched_by(self, source: str) -> list[str] | None:
        """The substances a source watches (None: all, or a source no longer configured)."""
        try:
            return self.config.source(source).substances
        except KeyError:
            return None

    def _missed_polls(self, src: Any, state: dict[str, Any], now: datetime) -> bool:
        """Whether polls of ``src`` were missed since its last successful one: the one
        before failed, or (a source polled by ``interval``) it was stale, no poll for
        more than ``general.stale_after_intervals`` of its intervals (paused, or warnd
        stopped)."""
        if int(state.get("consecutive_failures") or 0):
            return True
        last = state.get("last_success_at")
        if not (src.interval and last):
            return False
        gap = (_aware(now) - _aware(datetime.fromisoformat(last))).total_seconds()
        return gap > self.config.general.stale_after_intervals * interval_seconds(src.interval)

    def _source_health(self, store: Store, source_name: str, now: datetime) -> None:
        try:
            decide.check_source_health(self.config, store, source_name, now=now)
        except Exception as e:  # alerting about a source must never break polling
            log.error("source=%s health alert failed: %s", source_name, _one_line(e))

    def _keep_raw(self, source_name: str, doc: Any) -> None:
        """Keep the raw page of a layout-dependent source, so a changed layout can be
        re-parsed and a warning checked against what the site showed."""
        d = self.config.state_dir / "raw" / source_name
        try:
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{doc.sha256[:16]}.raw").write_bytes(doc.content)
        except OSError as e:
            log.warning("source=%s cannot keep raw page: %s", source_name, e.strerror)

    def _prepare_observations(
        self, store: Store, src: Any, observations: Iterable[Observation],
        problems: list[Problem] | None = None, location: str = "",
    ) -> list[Observation]:
        dim = src.dimension
        wanted = None if src.substances is None else set(src.substances)
        out = [
            o if o.dimension else replaced(o, dimension=dim)
            for o in observations
            if wanted is None or o.substance in wanted
        ]
        if src.kind == "google_trends":
            out = self._rescale_trends(store, out, [] if problems is None else problems,
                                       location,
                                       daily=self.build_feed(src.name).options.daily)
        return out

    def _rescale_trends(self, store: Store, obs: list[Observation], problems: list[Problem],
                        location: str, *, daily: bool = False) -> list[Observation]:
        """Each export is relative to its own peak: map it onto the stored scale.

        An export ending no later than the stored values do is no newer than one
        already read (a re-dropped file, whose running week has ended since): it only
        adds periods not stored, and revises none back to what an older export showed.
        A series is weekly unless its source asks for ``daily`` ones: daily values of a
        series with no step yet are read as the mean of each week they cover whole, as
        those of a weekly series are. A series keeps the step it was first stored with:
        any other step than its own is not read into it (a problem naming the file)."""
        try:
            from feeds.trends_csv import geo_of, rescale_to_overlap, same_geo, step_of
        except ImportError:  # pragma: no cover
            return obs
        groups: dict[tuple[str, str, str], list[Observation]] = {}
        for o in obs:
            groups.setdefault((o.source, o.substance, o.region), []).append(o)
        out: list[Observation] = []
        for (source, sub, region), group in groups.items():
            old = store.index_points(source, sub, region)
            geo = geo_of(group[0].ref)
            was = geo_of(store.index_ref(source, sub, region)) if old else None
            if geo and was and not same_geo(geo, was):
                problems.append(self._other_geo(location, sub, region, geo, was))
                continue
            have, got = step_of(old), step_of(o.period for o in group)
            if have is None and got == "day" and not daily:
                have = "week"  # a "past 90 days" export first: the series is weekly still
            if have and got and got != have:
                if (got, have) != ("day", "week"):
                    problems.append(self._other_step(location, sub, region, got, have,
                                                     daily=daily))
                    continue
                group = _daily_as_weekly(group)
                if not group:
                    continue
            if not old:
                out.extend(group)
                continue
            new = {o.period: o.value for o in group}
            scaled = rescale_to_overlap(new, old)
            older = max(new) <= max(old)
            out.extend(replaced(o, value=float(scaled.get(o.period, o.value))) for o in group
                       if not (older and o.period in old))
        return out

    def _other_step(self, location: str, sub: str, region: str, got: str,
                    have: str, *, daily: bool) -> Problem:
        """The problem of a Trends export whose rows have another step than its series;
        of a daily series its source does not ask for (``daily``: stored by a warnd that
        kept a first "past 90 days" export's days), also how to make it weekly."""
        from feeds.trends_csv import STEP_WORDS

        (got_rows, got_range), (have_rows, have_range) = STEP_WORDS[got], STEP_WORDS[have]
        hint = f"export {have_range} for {have_rows} values"
        if have == "day" and not daily:
            hint = (f"give the source a new name to read its exports afresh into a weekly "
                    f"series (the daily one is kept), or set daily = true and {hint}")
        return Problem(location, f"{got_rows} values ({got_range}), but the stored series "
                       f"of {self._series_words(sub, region)} is {have_rows}: its values "
                       f"not read, lest the two be mixed; {hint}")

    def _other_geo(self, location: str, sub: str, region: str, geo: str,
                   was: str) -> Problem:
        """The problem of a Trends export of another geography than its series'."""
        return Problem(location, f"an export of {geo}, but the stored series of "
                       f"{self._series_words(sub, region)} is read from exports of {was}: "
                       "its values not read, lest the two be mixed; drop it into the folder "
                       "of a source of its own, or set geo_as_region = true to keep each "
                       "geography as a region")

    def _series_words(self, sub: str, region: str) -> str:
        return self.config.substance_label(sub, "en") + (f" ({region})" if region else "")

    def _notice_alerts(self, store: Store, src: Any, items: Iterable[Any], now: datetime) -> None:
        for it in items:
            if getattr(it, "kind", "article") == "notice" and it.substances:
                # one alert for the notice, naming every substance it names
                decide.enqueue_notice(self.config, store, src, it, it.substances, now=now)

    def _missing_notice_alerts(self, store: Store, src: Any, now: datetime) -> None:
        """Alert notices stored without their alert (a crash between the two commits).

        A document's items are committed with its hash, its notice alerts right after;
        a restart skips the already-seen document, so this catches up from the store.
        A notice told by an older warnd (an alert per substance it names) has its alert.
        """
        from feeds.base import Item

        # only notices young enough to be alerted at all (alerting.notice_max_age), and
        # not those that name the substance only since its terms changed: matched again,
        # they are counted, not news
        since = iso(now - parse_duration(self.config.alerting.notice_max_age))
        rows = store.q(
            "SELECT i.*, json_group_array(s.substance) AS subs FROM items i "
            "JOIN item_substances s ON s.key = i.key "
            "LEFT JOIN substance_terms t ON t.substance = s.substance "
            "WHERE i.source=? AND i.kind='notice' AND i.published_at >= ? "
            "AND (t.changed_at IS NULL OR i.first_seen_at >= t.changed_at) AND NOT EXISTS "
            "(SELECT 1 FROM alerts a WHERE a.dedupe_key = 'notice:' || i.key) AND NOT EXISTS "
            "(SELECT 1 FROM item_substances o JOIN alerts a ON a.dedupe_key = "
            "o.substance || ':notice:' || o.key WHERE o.key = i.key) "
            "GROUP BY i.key ORDER BY i.published_at",
            [src.name, since],
        )
        for r in rows:
            subs = decide.notice_substances(self.config, json.loads(r["subs"]))
            if not subs:
                continue
            it = Item(key=r["key"], source=r["source"],
                      published_at=datetime.fromisoformat(r["published_at"]), title=r["title"],
                      link=r["link"], summary=r["summary"] or "", substances=tuple(subs),
                      kind="notice", region=r["region"] or "")
            aid = decide.enqueue_notice(self.config, store, src, it, subs, now=now)
            if aid is not None:
                log.warning("source=%s alert=%d for a notice stored before a restart",
                            src.name, aid)
        # a notice edited to name another substance, stored before a restart without
        # being told to the targets that substance brings
        for r in store.q(
            "SELECT i.* FROM items i JOIN alerts a ON a.dedupe_key = 'notice:' || i.key "
            "WHERE i.source=? AND i.kind='notice' AND i.published_at >= ? AND EXISTS "
            "(SELECT 1 FROM item_substances s LEFT JOIN substance_terms t ON t.substance = "
            "s.substance WHERE s.key = i.key AND s.substance NOT IN "
            "(SELECT value FROM json_each(a.data, '$.substances')) "
            "AND (t.changed_at IS NULL OR i.first_seen_at >= t.changed_at))",
            [src.name, since],
        ):
            it = Item(key=r["key"], source=r["source"],
                      published_at=datetime.fromisoformat(r["published_at"]), title=r["title"],
                      link=r["link"], summary=r["summary"] or "", substances=(),
                      kind="notice", region=r["region"] or "")
            decide.enqueue_renamed_notice(self.config, store, src, it, now=now)

    # -- stage 2: detect ------------------------------------------------------------
    def detect(
        self, series: Iterable[SeriesKey] | None = None, *, store: Store | None = None
    ) -> list[dict[str, Any]]:
        """Judge every period not yet judged; enqueue the alerts the episode rules send.

        Only series whose ``series`` row says something changed since they were last
        judged are read (all of them when ``series`` is None, else those of
        ``series``), so a pass with nothing new reads one index and no history.
        """
        try:
            with self._store(store) as st:
                return self._detect(st, series)
        except StoreError as e:
            log.error("detection not run: %s", e)
            return []

    def _detect(self, store: Store, series: Iterable[SeriesKey] | None) -> list[dict[str, Any]]:
        self._replayed_for.clear()
        pending = store.pending_series()
        keys = list(pending) if series is None else [k for k in set(series) if k in pending]
        level = logging.INFO if len(keys) >= PROGRESS_MIN else logging.DEBUG
        log.log(level, "detection started: %d series with something new", len(keys))
        t0 = time.monotonic()
        sent = self._judge(store, keys, pending)
        if series is None:  # a whole pass (start-up, `run --once`, the hourly job)
            sent += self._tell_held(store)
            if store.resolve_alerts_of_removed(self.config.substances):
                log.info("the open alerts of substances taken out of the config are resolved")
            decide.resolve_unwatched(self.config, store)
            decide.reopen_returned(self.config, store)
            decide.close_removed_failures(self.config, store, now=self.clock())
        for reason, n in sorted(self._replayed_for.items()):
            log.info("%d series replayed whole: %s", n, reason)
        log.log(level, "detection finished: %d alerts (%d series in %.1f s)", len(sent),
                len(keys), time.monotonic() - t0)
        return sent

    def _tell_held(self, store: Store) -> list[dict[str, Any]]:
        """What a silence or a mute held back of the configured substances, told if it
        has ended (:func:`warnd.alerting.decide.tell_held`): a substance whose data come
        monthly is told within the hour the silence ends, not with its next data; so is
        a rise held for corroboration once the config no longer asks for it. Also a
        substance judged in this pass: a round with no decision and no episode open (the
        end of its rise held back, its series quiet since) tells nothing of its own. A
        muted substance stays as it is."""
        sent: list[dict[str, Any]] = []
        for substance in store.held_back():
            if (substance not in self.config.substances
                    or self.config.substances[substance].muted):
                continue
            sent += decide.tell_held(self.config, store, substance, now=self.clock())
        return sent

    def _judge(self, store: Store, keys: list[SeriesKey],
               pending: dict[SeriesKey, Pending]) -> list[dict[str, Any]]:
        """Judge ``keys`` (pending series): a small pass all together, a large one a
        substance at a time, split over worker processes when configured
        (:meth:`_detect_split`)."""
        by_substance: dict[str, list[SeriesKey]] = {}
        for k in keys:
            by_substance.setdefault(k[1], []).append(k)
        with _older_objects_frozen():
            if len(by_substance) > 1 and len(keys) <= TOGETHER_MAX:
                return self._detect_together(store, by_substance, pending)
            groups = self._worker_groups(by_substance)
            if len(groups) > 1:
                return self._detect_split(store, groups, by_substance, pending)
            return self._detect_substances(store, by_substance, pending)

    def _detect_substances(
        self, store: Store, by_substance: dict[str, list[SeriesKey]],
        pending: dict[SeriesKey, Pending],
    ) -> list[dict[str, Any]]:
        """Each substance judged and committed on its own, in the order of their names;
        a large pass (:data:`PROGRESS_MIN`) says how far it is every
        :data:`PROGRESS_EVERY` seconds."""
        sent: list[dict[str, Any]] = []
        total = sum(map(len, by_substance.values()))
        t0 = last = time.monotonic()
        done = 0
        for i, (substance, skeys) in enumerate(sorted(by_substance.items()), start=1):
            sent += self._judge_substance(
                store, substance,
                lambda judged, sub=substance, sk=skeys: self._detect_substance(
                    store, sub, sk, pending, judged))
            done += len(skeys)
            now = time.monotonic()
            if total >= PROGRESS_MIN and now - last >= PROGRESS_EVERY and done < total:
                log.info("detection under way: %d of %d series judged (%d of %d substances) "
                         "in %.0f s", done, total, i, len(by_substance), now - t0)
                last = now
        return sent

    def _worker_groups(self, by_substance: dict[str, list[SeriesKey]]) -> list[list[str]]:
        """The substances of a pass in groups of about as many series each, one group a
        process (``general.detect_workers``; the first is this process's own): a single
        group for a pass under :data:`PARALLEL_MIN` series, of one substance, or in a
        worker already. Largest substances first, each to the group with fewest series."""
        n = min(self.config.general.detect_workers, len(by_substance))
        if n <= 1 or _IN_WORKER or sum(map(len, by_substance.values())) < PARALLEL_MIN:
            return [sorted(by_substance)]
        groups: list[list[str]] = [[] for _ in range(n)]
        sizes = [0] * n
        for sub in sorted(by_substance, key=lambda s: (-len(by_substance[s]), s)):
            i = sizes.index(min(sizes))
            groups[i].append(sub)
            sizes[i] += len(by_substance[sub])
        return [sorted(g) for g in groups]

    def _detect_split(
        self, store: Store, groups: list[list[str]], by_substance: dict[str, list[SeriesKey]],
        pending: dict[SeriesKey, Pending],
    ) -> list[dict[str, Any]]:
        """A large pass split by substance: each group but the first judged in a worker
        process of its own (started afresh, its own store connection), the first here
        meanwhile. Substances are independent and each is committed on its own, so the
        store ends as one process would leave it; SQLite takes the commits one at a
        time. A group whose worker fails or cannot start is judged here afterwards (its
        series still pending: a substance its worker committed is not judged twice).
        The alerts come back in the order one process gives them (by substance).
        A worker is a fresh interpreter (multiprocessing's *spawn*, safe in the daemon's
        threads) that imports the program's main module again, so a program that embeds
        warnd and splits passes keeps its own work under ``if __name__ == "__main__"``
        (warnd's commands do)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        now = self.clock()
        try:
            pool = ProcessPoolExecutor(
                len(groups) - 1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start, initargs=(os.getpid(), logging.getLogger().level))
        except (OSError, ValueError, ImportError) as e:  # no processes here: all in this one
            log.warning("detection in one process: worker processes cannot start: %s",
                        _one_line(e))
            return self._detect_substances(store, by_substance, pending)
        log.info("detection of %d series split over %d processes (%s)",
                 sum(map(len, by_substance.values())), len(groups),
                 "; ".join(f"{sum(len(by_substance[s]) for s in g)} series" for g in groups))
        sent: list[dict[str, Any]] = []
        with pool:
            futures = []
            for g in groups[1:]:
                try:  # a worker starts here: it may be refused (a sandbox, no memory)
                    fut: Any = pool.submit(_judge_elsewhere, self.config, now,
                                           [k for s in g for k in by_substance[s]])
                except Exception as e:
                    fut = e
                futures.append((g, fut))
            sent += self._detect_substances(store, {s: by_substance[s] for s in groups[0]},
                                            pending)
            for g, fut in futures:
                try:
                    if isinstance(fut, Exception):
                        raise fut
                    got, replayed = fut.result()
                except Exception as e:  # the worker failed, was killed or did not start
                    log.error("substances %s: detection in a worker process failed (%s); "
                              "judged in this one", ", ".join(g), _one_line(e))
                    left = store.pending_series()
                    todo = {s: [k for k in by_substance[s] if k in left] for s in g}
                    got = self._detect_substances(store, {s: v for s, v in todo.items() if v},
                                                  left)
                    replayed = {}
                sent += got
                self._replayed_for.update(replayed)
        return sorted(sent, key=lambda a: str(a.get("substance") or ""))

    def _judge_substance(
        self, store: Store, substance: str,
        judge: Callable[[list[tuple[SeriesKey, int, str | None]]], list[dict[str, Any]]],
        later: list[tuple[Any, ...]] | None = None,
    ) -> list[dict[str, Any]]:
        """``judge(judged)`` for one substance, then its series marked judged (or, with
        ``later``, added to it for the caller to mark): one substance's failure is
        logged and leaves the others' work standing."""
        judged: list[tuple[SeriesKey, int, str | None]] = []
        try:
            sent = judge(judged)
            if later is None:
                store.mark_judged(judged)
            else:
                later += judged
            return sent
        except Exception as e:
            self._substance_failed(substance, e)
        return []

    def _substance_failed(self, substance: str, e: Exception) -> None:
        """Says why a substance's detection was not stored (the store) or failed."""
        if self._detect_failed is not None:
            self._detect_failed.append(substance)
        if isinstance(e, sqlite3.Error):
            log.error("substance=%s detection not stored: %s", substance,
                      store_problem(e, self.config.state_dir))
        else:
            log.error("substance=%s detection failed: %s", substance, _one_line(e),
                      exc_info=e)

    def _detect_together(
        self, store: Store, by_substance: dict[str, list[SeriesKey]],
        pending: dict[SeriesKey, Pending],
    ) -> list[dict[str, Any]]:
        """A small pass (a poll's own: its source's series of every substance): every
        substance planned first, all their series advanced in one batch step instead of a
        step of a few series per substance, then each substance decided and committed on
        its own as :meth:`_detect_substance` does, and the series of every substance
        decided marked judged (with their new states) in one transaction at the end
        instead of one a substance. A failure to advance them together falls back to one
        substance at a time; a failure to mark them leaves them pending, to be judged
        again (what was decided is kept: the episode rules tell nothing twice)."""
        plans: dict[str, tuple[list[_Planned], list[tuple[SeriesKey, int, str | None]]]] = {}
        try:  # every substance's episode states in one query, not one a substance
            episodes = store.episode_states("series:" + series_key(*k)
                                            for keys in by_substance.values() for k in keys)
        except sqlite3.Error:
            episodes = None  # each substance reads its own, and says what fails
        for substance, skeys in sorted(by_substance.items()):
            judged: list[tuple[SeriesKey, int, str | None]] = []
            try:
                plans[substance] = (self._plan_substance(store, skeys, pending, judged,
                                                         episodes), judged)
            except Exception as e:
                self._substance_failed(substance, e)
        try:
            advanced = self._advance_planned(store, [p for plan, _ in plans.values() for p in plan])
        except Exception as e:  # each substance again on its own, which says what failed
            log.warning("%d substances judged one at a time: %s", len(plans), _one_line(e))
            advanced = None
        sent: list[dict[str, Any]] = []
        marks: list[tuple[Any, ...]] = []
        for substance, (plan, judged) in plans.items():

            def decide(judged_now, sub=substance, plan=plan, done=judged):
                judged_now += done
                got = advanced if advanced is not None else self._advance_planned(store, plan)
                return self._decide_substance(store, sub, plan, got, judged_now)

            sent += self._judge_substance(store, substance, decide, marks)
        try:
            store.mark_judged(marks)
        except Exception as e:  # named by the substances of the series left pending
            self._substance_failed(",".join(sorted({m[0][1] for m in marks})), e)
        return sent

    def _detect_substance(
        self, store: Store, substance: str, keys: list[SeriesKey],
        pending: dict[SeriesKey, Pending],
        judged: list[tuple[SeriesKey, int, str | None]],
    ) -> list[dict[str, Any]]:
        """Judge the new (or revised) periods of a substance's series; enqueue alerts.

        Appends to ``judged`` what is judged once the alerts and episode states are
        committed (by the caller). All periods a run brings are judged in order, but
        what is told is their net effect (:func:`summarise_batch`): a series catching up
        several periods at once (history on a first run, a monthly export, a source back
        after an outage) yields at most one decision per episode — ``open`` for an
        episode open at its newest period that was not open before, ``escalate``/
        ``repeat`` for one that was, ``resolve`` for one that was open and ended. On a
        first run an open episode is told only when its latest finding lies within
        ``general.backfill_current_periods`` periods of the newest one. When values
        already judged were revised (the series' ``changed_from`` is not after the last
        judged period), the series is judged again from its start, and an episode that
        was told but is gone after the revision is corrected (``correct``). Derived
        counts of warning notices (metric ``notices``) are judged and recorded for the
        scale and the report but never alert on their own: a warning is told once, as a
        warning.

        A series with a stored detector state and only new periods after it is
        judged incrementally, together with the substance's other such series
        (:meth:`_advance_all`: :func:`detectors.engine.advance_many`, reading only the
        new rows); one without a state, a revised one, or one whose state
        cannot continue is replayed whole, with the others so replayed
        (:meth:`_replay_all`: :func:`detectors.engine.replay_many`);
        the state after the last period is stored with the series (:meth:`Store.mark_judged`).
        """
        plan = self._plan_substance(store, keys, pending, judged)
        return self._decide_substance(store, substance, plan, self._advance_planned(store, plan),
                                      judged)

    def _plan_substance(
        self, store: Store, keys: list[SeriesKey], pending: dict[SeriesKey, Pending],
        judged: list[tuple[SeriesKey, int, str | None]],
        episodes: dict[str, dict[str, Any]] | None = None,
    ) -> list[_Planned]:
        """What :meth:`_detect_substance` judges of a substance's series (``keys``): each
        series with something new, its params and what its episode state says (read
        here unless ``episodes`` holds them, as :meth:`Store.episode_states` gives
        them); those with nothing new since their last judged period go to ``judged``
        as they are."""
        params_of: dict[str, Any] = {}  # per source: built once, not once per series
        if episodes is None:
            episodes = store.episode_states("series:" + series_key(*k) for k in keys)
        plan = []
        for key in sorted(set(keys)):
            source, sub, region, metric = key
            try:
                src = self.config.source(source)
            except KeyError:
                continue  # a source removed from config keeps its data but is not judged
            info = pending[key]
            version = int(info.data_version)
            params = params_of.get(source)
            if params is None:
                params = params_of[source] = self.config.detection_params(sub, source)
            scope = "series:" + series_key(*key)
            stored = episodes.get(scope)
            tracker = None  # a quiet series' tracker is made only if a finding comes
            if decide.tracker_quiet(stored):
                last_done = decide.last_period_of(stored)
                if info.judged_period:
                    # a quiet series' state is not rewritten each period (see below): the
                    # series' last judged period says how far it was judged
                    judged_to = date.fromisoformat(str(info.judged_period)[:10])
                    if last_done is None or judged_to > last_done:
                        last_done = judged_to
            else:
                tracker = decide.tracker_from_state(stored, params)
                last_done = tracker.last_period
            changed = info.changed_from
            revised = bool(last_done is not None and changed
                           and date.fromisoformat(str(changed)[:10]) <= last_done)
            if (last_done is not None and not revised
                    and str(info.last_period) <= last_done.isoformat()):
                judged.append((key, version, last_done.isoformat()))
                continue
            plan.append(_Planned(key, src, params, scope, stored, tracker, last_done, revised,
                                 version))
        return plan

    def _advance_planned(
        self, store: Store, plan: list[_Planned],
    ) -> dict[SeriesKey, tuple[list[Any], list[list[Finding]], bytes, Any]]:
        """:meth:`_advance_all` of the planned series that were not revised."""
        return self._advance_all(store, [(p.key, p.src, p.params, p.last_done)
                                         for p in plan if not p.revised])

    def _decide_substance(
        self, store: Store, substance: str, plan: list[_Planned],
        advanced: dict[SeriesKey, tuple[list[Any], list[list[Finding]], bytes, Any]],
        judged: list[tuple[SeriesKey, int, str | None]],
    ) -> list[dict[str, Any]]:
        """The rest of :meth:`_detect_substance` once the series of ``plan`` that could
        be were advanced (``advanced``, of these series or more): the others replayed,
        the episode rules run, the findings recorded and the alerts enqueued."""
        firing: list[tuple[Finding, str]] = []
        states: dict[str, dict[str, Any]] = {}
        found: list[Finding] = []  # recorded together, before the alerts are decided
        whole: dict[str, str] = {}  # the series judged again from their start: key, substance
        history: set[str] = set()  # findings a revision brought in periods judged before
        replayed = self._replay_all(store, [p for p in plan if p.key not in advanced])
        for key, src, params, scope, stored, tracker, last_done, revised, version in plan:
            metric = key[3]
            before = ({} if tracker is None else  # quiet: no episode open
                      {k: decide.finding_from_dict(v) for k, v in tracker.active.items()
                       if tracker.tracker.state["open"].get(k, {}).get("sent", True)})
            judged_to = last_done  # the last period judged before this pass
            told_open: dict[str, Any] = {}  # a revised series' open episodes as they were told
            since_sent: dict[str, int] = {}  # and the periods since each last counted as told
            if revised:
                log.info("series=%s values already judged were revised: judged again",
                         scope.removeprefix("series:"))
                if tracker is not None:
                    told_open = tracker.tracker.state["open"]
                    since_sent = {k: tracker.tracker.state["period"] - ep["last_sent"]
                                  for k, ep in told_open.items()}
                tracker = decide.tracker_from_state(None, params)
                last_done = None
                whole[scope.removeprefix("series:")] = key[1]
            judged_now = advanced.get(key)
            if judged_now is None:
                judged_now = next(replayed)
            periods, per_period, state, before_first = judged_now
            if not periods:
                continue
            # packed at once: a first cycle holds a substance's states until they are saved
            packed = state if state is None or isinstance(state, bytes) else pack_state(state)
            todo = [i for i, p in enumerate(periods) if last_done is None or p > last_done]
            if not todo:
                judged.append((key, version, last_done.isoformat() if last_done else None,
                               packed))
                continue
            judged.append((key, version, periods[-1].isoformat(), packed))
            if src is not None and any(f.dimension != src.dimension
                                       for i in todo for f in per_period[i]):
                per_period = list(per_period)  # in the source's dimension as configured now
                for i in todo:
                    per_period[i] = _in_dimension(per_period[i], src.dimension)
            found += (f for i in todo for f in per_period[i])
            if tracker is None:
                if not any(per_period[i] for i in todo):
                    # quiet before, no finding now: no episode opens, nothing to tell,
                    # and its episode row is kept as it is (below)
                    continue
                tracker = decide.tracker_from_state(stored, params)
                tracker.last_period = last_done
            batch: list[tuple[str, Finding]] = []
            fresh: list[tuple[str, Finding]] = []  # those of periods not judged before
            for i in todo:
                if since_sent and (judged_to is None or periods[i] > judged_to):
                    _carry_reminders(tracker, since_sent)
                    since_sent = {}
                got = decide.tracker_update(tracker, periods[i], list(per_period[i]))
                batch += got
                if judged_to is None or periods[i] > judged_to:
                    fresh += got
            if since_sent:
                _carry_reminders(tracker, since_sent)
            n = len(periods)
            window = max(self.config.general.backfill_current_periods, 1)
            if n >= window:
                recent = periods[n - window]
            elif n == window - 1 and before_first is not None:
                recent = before_first  # the stored period just before these: no query
            else:
                recent = store.nth_last_period(key, window) or periods[0]
            first_run = stored is None or "tracker" not in (stored or {})
            if revised or first_run:
                # a revision judged the series' past again, or its history is judged for the
                # first time: what it finds there before the latest periods is history,
                # recorded (and not told) as of its period, not as news of this pass (the
                # digest's "recorded since")
                history.update(f.key for i in todo
                               if first_run or (judged_to and periods[i] <= judged_to)
                               for f in per_period[i] if f.detected_at < recent)
            decisions = summarise_batch(
                batch, before,
                # a fall told before ``alert_decreases`` was turned off goes on until it
                # ends: it is not ended by the reload
                [f for f in tracker.active_findings()
                 if f.direction == "increase" or params.alert_decreases
                 or f"{f.kind}:{f.direction}" in before],
                first_run=first_run, recent=recent, revised=revised,
                grown={k for k, ep in tracker.tracker.state["open"].items()
                       if k in told_open and episode_grew(ep, told_open[k], params)},
                fresh=fresh,
            )
            for kind, direction in (("trend", "increase"), *decide.OTHER_EPISODES):
                if (not revised or f"{kind}:{direction}" in before or metric == "notices"
                        or any(f.kind == kind and f.direction == direction
                               for f in tracker.active_findings())):
                    continue
                # the series' rise (spike, fall) ended before the revision, while the
                # substance's goes on: the one it was told with, gone now, is corrected as
                # one still open
                gone = decide.rise_withdrawn(
                    store, substance, scope.removeprefix("series:"),
                    [f for i in todo for f in per_period[i]], kind, direction,
                    sources=self.config.watched_sources())
                if gone is not None:
                    decisions.append((gone, "correct"))
            after = decide.tracker_state(tracker)
            if not (decide.tracker_quiet(stored) and decide.tracker_quiet(after)):
                # written when its episodes change; a series quiet before and after keeps
                # its row, and its last judged period is the series' (mark_judged)
                states[scope] = after
            if metric == "notices":
                continue  # the warning itself was told; its weekly count only feeds the scale
            firing += decisions
        if found or whole:
            # a revised series' findings its values no longer give are withdrawn
            store.record_findings(found, now=self.clock(), whole=whole, history=history)
        return decide.enqueue_findings(self.config, store, substance, firing, states,
                                       now=self.clock())

    def _advance_all(
        self, store: Store, entries: list[tuple[SeriesKey, Any, Any, Any]],
    ) -> dict[SeriesKey, tuple[list[Any], list[list[Finding]], bytes, Any]]:
        """For each series of ``entries`` (key, source, params, last judged period)
        whose stored detector state can take its new periods: ``(periods, findings per
        period, the state after them packed, the stored period just before them)``, all
        judged together (:func:`detectors.engine.advance_many`, one period at a time
        across the series that have it). Series without a usable state, or whose state
        cannot take a period, are left out: the caller replays them (:meth:`_replay_all`).
        ``ADVANCE_CHUNK`` series are held unpacked at a time."""
        out = {}
        for lo in range(0, len(entries), ADVANCE_CHUNK):
            out.update(self._advance_part(store, entries[lo : lo + ADVANCE_CHUNK]))
        return out

    def _advance_part(
        self, store: Store, entries: list[tuple[SeriesKey, Any, Any, Any]],
    ) -> dict[SeriesKey, tuple[list[Any], list[list[Finding]], bytes, Any]]:
        entries = [e for e in entries if e[3] is not None]
        if len(entries) < ARRAY_MIN:
            raw = dict(store.state_blobs([e[0] for e in entries]))
            return self._advance_states(store, [e for e in entries if e[0] in raw], raw)
        got = store.states_with_rows((e[0], e[3]) for e in entries)  # rows after last_done
        raw = {key: blob for key, (blob, _) in got.items()}
        out, rest = self._advance_blocks([e for e in entries if e[0] in raw], got)
        out.update(self._advance_states(store, [e for e in entries if e[0] in rest], raw))
        return out

    def _advance_blocks(
        self, entries: list[tuple[SeriesKey, Any, Any, Any]],
        got: dict[SeriesKey, tuple[bytes, list[tuple[Any, ...]]]],
    ) -> tuple[dict[SeriesKey, tuple[list[Any], list[list[Finding]], bytes, Any]],
               set[SeriesKey]]:
        """The series of ``entries`` with one new period whose stored states are in the
        fixed layout (most of a steady pass), judged as arrays: the states read
        together (:func:`warnd.statecodec.read_many`), stepped together
        (:func:`detectors.engine.advance_block`; states with a fit made ahead of time
        and those without in one step, :func:`joined_fits`) and packed together
        (:func:`warnd.statecodec.pack_many`), with no Python object per series; the
        same findings and stored bytes as :meth:`_advance_states` gives them (tested).
        ``got`` holds each series' stored state and its rows after its last judged
        period. Returns what :meth:`_advance_all` returns for those, and the keys of the
        rest (other layouts, several new periods, a state not at the last judged period,
        a state the batch step cannot take), for :meth:`_advance_states`."""
        from detectors.engine import NeedsReplay, advance_block, params_digest
        from warnd.statecodec import read_many

        groups, unread = read_many([got[e[0]][0] for e in entries])
        rest = {entries[i][0] for i in unread}
        # by family, parameters in a fit and params (states with eight fits and those
        # with a ninth made ahead step together): (group, row in it, entry index, state's
        # last period, new)
        ready: dict[tuple[str, int, str], list[tuple[Any, int, int, Any, Any]]] = {}
        for g in groups:
            for r, i in enumerate(g.index):
                key, _, params, last_done = entries[i]
                rows = got[key][1]
                try:
                    last = date.fromisoformat(g.skeletons[r]["last_period"])
                except (KeyError, TypeError, ValueError):
                    last = None
                # a state behind or ahead of the last judged period, several new rows or
                # a denominator: the other path (which also says why a state cannot go on)
                if last != last_done or len(rows) != 1 or rows[0][2] is not None:
                    rest.add(key)
                    continue
                value = float("nan") if rows[0][1] is None else float(rows[0][1])
                new = (date.fromisoformat(rows[0][0]), value)
                ready.setdefault((g.family, g.fits["beta"].shape[2], params_digest(params)),
                                 []).append((g, r, i, last, new))
        out: dict[SeriesKey, tuple[list[Any], list[list[Finding]], bytes, Any]] = {}
        for (family, _, _), todo in ready.items():
            params = entries[todo[0][2]][2]
            todo.sort(key=lambda a: a[0].index[0])  # each group's states together
            fits, counts = joined_fits(family, [(g, r) for g, r, _, _, _ in todo])
            states = [g.skeletons[r] for g, r, _, _, _ in todo]
            try:
                step = advance_block(states, [g.tails[r] for g, r, _, _, _ in todo], fits,
                                     counts, [a[4] for a in todo], params)
            except BAD_STATE as e:  # a damaged state among them: each on its own
                log.warning("%d series judged one by one: %s", len(todo), _one_line(e))
                rest.update(entries[a[2]][0] for a in todo)
                continue
            packed = self._pack_block(states, step, family)
            for j, (_, _, i, last, new) in enumerate(todo):
                key, found = entries[i][0], step.found[j]
                if isinstance(found, NeedsReplay):
                    self._replayed(key, found)
                elif found is None:
                    rest.add(key)
                else:
                    out[key] = ([new[0]], [found], packed[j], last)
        return out, rest

    @staticmethod
    def _pack_block(states: list[dict[str, Any]], step: Any, family: str) -> list[Any]:
        """The states :func:`detectors.engine.advance_block` moved on, packed: those
        with the same number of fits together (:func:`warnd.statecodec.pack_many`),
        any it cannot take one by one."""
        from detectors.engine import SeriesState
        from warnd.statecodec import pack_many

        counts = step.counts
        starts = np.concatenate([[0], np.cumsum(counts)])
        packed: list[Any] = [None] * len(states)
        taken = np.array([t is not None for t in step.tails], dtype=bool)
        for k in np.unique(counts[taken]).tolist():
            sel = np.flatnonzero(taken & (counts == k))
            rows = (starts[sel][:, None] + np.arange(k)[None, :]).ravel()
            fits = step.fits.take(rows)
            got = pack_many([states[j] for j in sel.tolist()],
                            [step.tails[j] for j in sel.tolist()], family,
                            {n: a.reshape((len(sel), k, *a.shape[1:]))
                             for n, a in fits.arrays().items()}) if k else None
            for m, j in enumerate(sel.tolist()):
                if got is not None:
                    packed[j] = got[m]
                else:  # fits the fixed layout cannot take as one: as a SeriesState
                    d = dict(states[j])
                    d.update(y=step.tails[j], den=None,
                             fits=fits.take(np.arange(m * k, (m + 1) * k)))
                    packed[j] = pack_series(SeriesState(d))
        return packed

    def _advance_states(
        self, store: Store, entries: list[tuple[SeriesKey, Any, Any, Any]],
        raw: dict[SeriesKey, bytes],
    ) -> dict[SeriesKey, tuple[list[Any], list[list[Finding]], bytes, Any]]:
        """:meth:`_advance_all` for series whose states are read and stepped one
        :class:`detectors.engine.SeriesState` each (:func:`detectors.engine.advance_many`):
        any layout and any number of new periods."""
        from detectors.baseline import Fits
        from detectors.engine import NeedsReplay, SeriesState, advance_many, params_digest

        ready: dict[str, list[_Advancing]] = {}  # by params: equal params share the calls
        # unreadable states are left out: replayed, as series without one
        blobs = readable_states(((e[0], raw[e[0]]) for e in entries), arrays=True,
                                make_fits=Fits.from_arrays)
        usable = []
        for entry in entries:
            key, src, params, last_done = entry
            blob = blobs.get(key)
            if blob is None:
                continue
            try:
                state = SeriesState.from_dict(blob)
                if state.last_period > last_done:
                    raise NeedsReplay("the episode state is behind the detector state")
            except NeedsReplay as e:
                self._replayed(key, e)
                continue
            except BAD_STATE as e:
                _state_unusable(key, e)
                continue
            usable.append((entry, state))
        tails = store.series_tails((entry[0], state.last_period, entry[1].dimension)
                                   for entry, state in usable)
        for entry, state in usable:
            ready.setdefault(params_digest(entry[2]), []).append(
                _Advancing(entry, state, tails[entry[0]], before=state.last_period))
        out = {}
        for group in ready.values():
            params = group[0].entry[2]
            alive, r = [a for a in group if a.tail.periods], 0
            while alive:  # the r-th new period of every series that has one
                items = []
                for a in alive:
                    dens = a.tail.denominators
                    den = None if dens is None or not np.isfinite(dens[r]) else float(dens[r])
                    items.append((a.state, a.tail.periods[r], float(a.tail.values[r]), den))
                try:
                    res = advance_many(items, params)
                except BAD_STATE as e:
                    for a in group:
                        a.failed = True
                    if len(group) == 1:
                        _state_unusable(group[0].key, e)
                    else:  # a damaged state among them: each again on its own
                        log.warning("%d series judged one by one: %s", len(group),
                                    _one_line(e))
                        for a in group:
                            out.update(self._advance_states(store, [a.entry], raw))
                    break
                r += 1
                for a, found in zip(alive, res, strict=True):
                    if isinstance(found, NeedsReplay):
                        self._replayed(a.key, found)
                        a.failed = True
                    else:
                        a.per_period.append(found)
                alive = [a for a in alive if not a.failed and len(a.tail.periods) > r]
            for a in group:
                if not a.failed:
                    out[a.key] = (list(a.tail.periods), a.per_period,
                                  pack_series(a.state), a.before)
        return out

    def _replayed(self, key: SeriesKey, why: Exception) -> None:
        """A series whose stored state cannot continue, so it is replayed whole: said
        for the series at debug level; the reasons that come for many series at once
        (an engine version or changed detection params, after an upgrade or a config
        change that makes a cycle slower) are counted and told once a pass."""
        from detectors.engine import OTHER_PARAMS, OTHER_VERSION  # loaded by the caller

        log.debug("series=%s replayed: %s", series_key(*key), why)
        if str(why) in (OTHER_VERSION, OTHER_PARAMS):
            self._replayed_for[str(why)] += 1

    def _replay_all(
        self, store: Store, plan: list[_Planned],
    ) -> Iterator[tuple[list[Any], list[list[Finding]], Any, None]]:
        """The series of ``plan`` (those :meth:`_advance_all` left out) replayed whole,
        in order: ``(periods, findings per period, the state after them, None)`` each.
        Their baseline fits are made together (:func:`detectors.engine.replay_many`);
        series are loaded as the replay reaches them, a few dozen at a time."""
        from detectors.engine import replay_many

        waiting: deque[Any] = deque()  # loaded, not yet given back

        def loaded():
            for p in plan:
                series = store.load_series(*p.key, dimension=p.src.dimension)
                waiting.append(series)
                yield series, p.params

        for per_period, st in replay_many(loaded(), with_state=True):
            series = waiting.popleft()
            yield (list(series.periods), per_period,
                   st.to_store() if st is not None else None, None)

    # -- stage 3: dispatch ------------------------------------------------------------
    def dispatch(self, *, store: Store | None = None, digests: bool = True
                 ) -> dict[str, int]:
        """Send what is due; ``digests`` False: make no digest now (the sources not
        polled yet since the start)."""
        log.debug("dispatch started")
        try:
            with self._store(store) as st:
                counts = outbox.dispatch_pending(self.config, st, now=self.clock(),
                                                   send=self._logged_send, clock=self.clock,
                                                   stop=self.stopping.is_set, digests=digests)
            log.debug("dispatch finished: %s", counts)
            return counts
        except sqlite3.Error as e:
            log.error("dispatch stopped: %s", store_problem(e, self.config.state_dir))
            return dict(NO_DELIVERIES)
        except StoreError as e:  # the store cannot be opened: one line, no traceback
            log.error("dispatch not run: %s", e)
            return dict(NO_DELIVERIES)

    def _logged_send(self, url: str, **kw: Any) -> Any:
        """Send through the configured function, with a log line before the send.

        A crash between a send and its ``delivered`` mark makes the next start send
        again (at-least-once); the "sending" line lets an operator, and the fault
        injection check, tell such an interrupted send from a real duplicate.
        """
        if self._send is None:
            from warnd.alerting.send import send as send_fn
        else:
            send_fn = self._send
        log.info("sending to %s: %s", _host_of(url), kw.get("title", ""))
        return send_fn(url, **kw)

    # -- one cycle ---------------------------------------------------------------------
    def run_once(self) -> dict[str, Any]:
        """Poll every enabled source, judge what is new, send: one store connection
        for the whole cycle (:meth:`session`: its WAL checkpointed on a thread of its
        own, and whatever is left at its close). ``alerts`` lists
        every alert the cycle created — warnings and source-health alerts (made while
        polling) first, then the detection's — but not the digest; ``detect_failed``
        the substances whose detection failed or could not be stored (logged with why).

        Once :attr:`stopping` is set (``run --once`` given SIGTERM or SIGINT) no stage
        begins: the poll in flight ends, the sources after it are not polled, detection
        not run unless it has begun (their series stay pending, judged at the next run),
        and a round of sends begins none (those in flight end and are recorded, the
        others wait as they were). ``stopped`` then tells what is left: the sources not
        polled, whether detection ran, the series and deliveries waiting."""
        self._detect_failed = []
        try:
            with self.session() as store:
                first_id = _last_alert_id(store)
                names = [s.name for s in self.config.sources if s.enabled]
                polls = []
                for name in names:
                    if self.stopping.is_set():
                        break
                    polls.append(self.poll(name, store=store))
                alerts = self._polled_alerts(store, first_id)
                detected = not self.stopping.is_set()
                if detected:
                    alerts += self.detect(store=store)
                delivered = (self.dispatch(store=store) if not self.stopping.is_set()
                             else dict(NO_DELIVERIES))
                stopped = (self._left_waiting(store, names, polls, detected)
                           if self.stopping.is_set() else None)
            failed = sorted({s for names in self._detect_failed for s in names.split(",")})
        finally:
            self._detect_failed = None
        return {"polls": polls, "alerts": alerts, "deliveries": delivered,
                "detect_failed": failed, "stopped": stopped}

    def _left_waiting(self, store: Store, names: list[str], polls: list[PollResult],
                      detected: bool) -> dict[str, Any]:
        """What a cycle stopped part way leaves for the next: the sources ``names`` not
        polled, whether detection ran, how many series wait to be judged and how many
        deliveries to go."""
        return {"not_polled": names[len(polls):], "detection_run": detected,
                "series_waiting": store.pending_summary(names)[0],
                "deliveries_waiting": outbox.count_deliveries(store, statuses=("pending",))}

    def _polled_alerts(self, store: Store, after: int) -> list[dict[str, Any]]:
        """Alerts created while polling (warning notices, source health) after id ``after``."""
        from warnd.alerting.wording import render_text

        rows = store.q("SELECT * FROM alerts WHERE id > ? AND kind != 'digest' ORDER BY id",
                       [after])
        out = []
        for r in rows:
            data = json.loads(r["data"] or "{}")
            targets = [d["target"] for d in store.q(
                "SELECT target FROM deliveries WHERE alert_id=? ORDER BY target", [r["id"]])]
            body = (render_text(data, self.config.general.language, r["id"])[1] if data
                    else r["body"])
            out.append({**r, "data": data, "body": body, "targets": targets})
        return out


def joined_fits(family: str, picks: list[tuple[Any, int]]) -> tuple[Any, np.ndarray]:
    """The fits of the states ``picks`` (each a :class:`warnd.statecodec.StateGroup` and
    a row of it; a group's rows next to each other) as one
    :class:`detectors.baseline.Fits`, series after series, and each series' number of
    fits: what :func:`detectors.engine.advance_block` takes. The groups may differ in
    their number of fits (a fit made ahead of time), not in their family or a fit's
    parameters."""
    from detectors.baseline import Fits

    parts, counts = [], []
    lo = 0
    while lo < len(picks):
        g = picks[lo][0]
        hi = lo + 1
        while hi < len(picks) and picks[hi][0] is g:
            hi += 1
        rows = np.array([r for _, r in picks[lo:hi]], dtype=np.int64)
        k = g.fits["beta"].shape[1]
        parts.append(Fits.from_arrays(family, {n: a[rows].reshape((len(rows) * k, *a.shape[2:]))
                                               for n, a in g.fits.items()}))
        counts.append(np.full(len(rows), k, dtype=np.int64))
        lo = hi
    fits = parts[0] if len(parts) == 1 else Fits.concat(family, parts)
    return fits, np.concatenate(counts)


def _in_dimension(findings: list[Finding], dimension: str) -> list[Finding]:
    """``findings`` of a source's series in its ``dimension`` as configured now: a series'
    detector state and its first rows keep the dimension it was first judged in, and a
    reload that corrects the source's dimension would otherwise never reach its
    messages nor the digest."""
    return [f if f.dimension == dimension else replaced(f, dimension=dimension)
            for f in findings]


def _last_alert_id(store: Store) -> int:
    return int(store.q("SELECT COALESCE(MAX(id), 0) AS n FROM alerts")[0]["n"])


def _carry_reminders(tracker: Any, since_sent: dict[str, int]) -> None:
    """A revised series' episodes judged again from its start, up to the last period
    judged before: an episode still open counts its reminder from the last message as
    the stored state had it (``since_sent``: periods since then, by ``kind:direction``;
    a message of the substance from another source counts, see
    :func:`warnd.alerting.decide.enqueue_findings`), not from the replay's own, which
    may be a reminder nobody had (it fell in a period judged before, when none was
    due)."""
    state = tracker.tracker.state
    for key, since in since_sent.items():
        ep = state["open"].get(key)
        if ep is not None:
            ep["last_sent"] = state["period"] - since


def summarise_batch(
    batch: list[tuple[str, Finding]], before: dict[str, Finding], after: list[Finding], *,
    first_run: bool, recent: Any, revised: bool = False, grown: Collection[str] = (),
    fresh: list[tuple[str, Finding]] | None = None,
) -> list[tuple[Finding, str]]:
    """The net decisions of a run that judged one or more periods of one series.

    ``batch`` holds the tracker's sendable decisions in period order, ``before`` the
    open episodes (latest finding by ``kind:direction``) before the run that were sent
    (a decrease opened without ``alert_decreases`` is not among them), ``after`` those
    open after it (only those that may be sent: decreases only with
    ``alert_decreases``, or one in ``before``: told, it goes on until it ends). A revised
    series' ``batch`` holds its whole history, so what
    tells that an episode open before and after it grew is ``grown`` (those whose
    evidence is more than the series' state had before: ``episode_grew``), and what
    tells that a reminder is due a ``repeat`` among ``fresh``, the decisions of its
    periods not judged before. See :meth:`Pipeline._detect_substance`.
    """
    acted: dict[str, set[str]] = {}
    last_of: dict[str, Finding] = {}
    for action, f in batch:
        key = f"{f.kind}:{f.direction}"
        acted.setdefault(key, set()).add(action)
        last_of[key] = f
    open_after = {f"{f.kind}:{f.direction}": f for f in after}
    out: list[tuple[Finding, str]] = []
    for key, f in sorted(open_after.items()):
        if key not in before:
            if (first_run or revised) and f.detected_at < recent:
                continue  # history: recorded, not told
            if key in acted or first_run or revised:
                out.append((f, "open"))
        elif revised:
            if key in grown:  # more than was told, its new periods or the revision shows
                out.append((f, "escalate"))
            elif any(a == "repeat" and f"{g.kind}:{g.direction}" == key for a, g in fresh or ()):
                out.append((f, "repeat"))
        elif acted.get(key, set()) & {"open", "escalate"}:
            out.append((f, "escalate"))
        elif "repeat" in acted.get(key, set()):
            out.append((f, "repeat"))
    for key, f in sorted(before.items()):
        if key in open_after:
            continue
        # a revised series is judged from its start: only an end of an episode that was
        # still on when the told one began is its end, not one of an older episode
        if revised and not any(a == "resolve" and g.detected_at >= f.onset for a, g in batch
                               if f"{g.kind}:{g.direction}" == key):
            out.append((f, "correct"))  # the episode is gone once the values were revised
        else:
            out.append((last_of.get(key, f), "resolve"))
    return out


def _worker_start(parent: int, level: int) -> None:
    """A worker process of a split detect pass, as it starts: it splits nothing further,
    logs as its parent does, leaves SIGTERM and a first SIGINT to its parent (a terminal's
    Ctrl-C reaches the whole process group: the pass that had begun ends, the workers'
    part too, as its parent's rule says; a stopping daemon gives its running pass,
    workers included, until ``general.stop_timeout``; systemd sends SIGTERM to every
    process of the service), ends at once and without a traceback on a second SIGINT
    (as its parent does; what it had not committed is rolled back), and on Linux is
    killed when its parent ends (even by SIGKILL), so none goes on writing to the store
    alone."""
    global _IN_WORKER
    import signal

    from warnd import logs

    def _interrupted(_signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))

    _IN_WORKER = True
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent ended before that took hold
        os._exit(1)
    logs.setup(logging.getLevelName(level))


def _judge_elsewhere(config: Config, now: datetime,
                     keys: list[SeriesKey]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """In a worker process: judge those of ``keys`` still pending, at the pass's time
    ``now``, on a store connection of its own; the alerts made and the series replayed
    whole (by reason; the parent says them once for the pass)."""
    pipeline = Pipeline(config, clock=lambda: now)
    with pipeline.session() as store:
        pending = store.pending_series()
        sent = pipeline._judge(store, [k for k in keys if k in pending], pending)
    return sent, dict(pipeline._replayed_for)


def _state_unusable(key: SeriesKey, e: BaseException) -> None:
    """A stored state that unpacked but does not hold together (a damaged store): said,
    and the series replayed, so the substance's detection goes on."""
    log.warning("series=%s detector state unusable (%s): replayed from the store",
                series_key(*key), _one_line(e))


#: The characters of a summary an item keeps (``feeds/feedxml.py``, ``feeds/notices.py``).
SUMMARY_KEPT = 2000


def _keeps_all(feed: Any) -> bool:
    """Whether a source of items keeps every item it reads, also those naming no watched
    substance (a notice page's ``keep_unmatched``; a news feed keeps only those that do)."""
    return bool(getattr(feed.options, "keep_unmatched", False))


def _daily_as_weekly(days: list[Observation]) -> list[Observation]:
    """A Trends series' daily values as weekly ones: the mean of each of Google's weeks
    (Sunday to Saturday) they cover whole, on the period its weekly row is stored on. A
    week's value is its searches to the peak's as its days' are, up to the scale that
    rescaling finds; a week covered in part (an export's first, its last) is left out."""
    from feeds.trends_csv import whole_weeks

    by_day = {o.period: o for o in days}
    out = []
    for week, ds in whole_weeks(by_day).items():
        parts = [by_day[d] for d in ds]
        out.append(replaced(parts[0], period=week, value=sum(p.value for p in parts) / 7,
                            flag="lt1" if all(p.flag == "lt1" for p in parts) else None))
    return out


def _copy_problem(location: str, of: str, holder: str, *, before: bool = False) -> str:
    """What a poll says of the file at ``location``, found a copy of the version kept of
    the file at ``of``, which stands for ``holder``'s share (``of`` itself, or the file
    ``of`` is a copy of); files of the copy's folder by their names. ``before``:
    the copy was counted as a share of its own before copies were found."""
    def name(loc: str) -> str:
        folder, _, base = loc.rpartition("/")
        return base if folder == location.rpartition("/")[0] else loc

    stands = "" if holder == of else f", which stands for {name(holder)}'s share"
    if before:
        return (f"a copy of {name(of)} (the same bytes), counted as a share of its own "
                "before: counted once from now on")
    return f"a copy of {name(of)} (the same bytes){stands}: counted once, not again"


def _turnover_gap(src: Any, since: str | None, oldest: datetime | None) -> str | None:
    """The problem of a feed whose oldest entry read now is newer than its previous
    successful poll (``since``): the entries published between them may have left it
    unread. None when it is not (or was never read before, or shows no dated entry)."""
    if since is None or oldest is None:
        return None
    last = _aware(datetime.fromisoformat(since))
    first = _aware(oldest)
    if first <= last:
        return None
    fmt = "%Y-%m-%d %H:%M UTC"
    how = (f"a shorter `interval` than {src.interval}" if src.interval
           else "a `cron` that polls it more often")
    return (f"{MISSED}the oldest entry the feed shows "
            f"({first.astimezone(UTC):{fmt}}) is newer than the last successful poll "
            f"({last.astimezone(UTC):{fmt}}), so what it showed between them was not read; "
            f"its entries turn over faster than it is polled: give it {how}")


def _one_line(e: BaseException) -> str:
    """One line for an error, with passwords and tokens in URLs masked (it is stored)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return redact(msg if isinstance(e, WarndError) else f"{type(e).__name__}: {msg}"[:500])


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def interval_seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}"
    except ValueError:
        return url.split("://", 1)[0] + "://"
