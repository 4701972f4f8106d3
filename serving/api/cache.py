"""What one app keeps between requests: the latest run, the decisions read from it, the
champion, the on-demand context.

The nightly job publishes at most a few runs a day. The latest run (and a fingerprint of all
complete runs, which class histories depend on) is re-checked every `RUN_TTL_SECONDS` by one
background thread while readers keep the known one; each enterprise's decision is serialised
once per published generation and kept (LRU, `DECISION_CACHE_ENTRIES`), so a repeated read
touches no table and builds no model. Loading a model or a snapshot happens once per app,
under a lock, never per request.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from serving.api.schemas import EnterpriseDecision
from serving.settings import Settings
from serving.store import RUN_COMPLETE, RunRecord, enterprise_scores, latest_complete_run, runs

LOG = logging.getLogger("riskmatrix.serving")
RUN_TTL_SECONDS = 2.0
LISTS_TTL_SECONDS = 15.0
# Decisions kept ready to send (about 2 kB each): the firms being read this run.
DECISION_CACHE_ENTRIES = 20_000
ON_DEMAND_PARALLEL = 1


@dataclass(frozen=True)
class CachedDecision:
    """One enterprise's published decision as the API's JSON body. Kept as bytes, not as a
    model: bytes are invisible to the garbage collector, thousands of models are not."""

    body: bytes
    run_id: int
    as_of: dt.date

    @property
    def decision(self) -> EnterpriseDecision:
        """The decision as a model (for the pages)."""
        return EnterpriseDecision.model_validate_json(self.body)


def freeze_long_lived() -> None:
    """Move everything loaded so far out of the collector's sight (`gc.freeze`): models,
    snapshot frames and modules live as long as the process, and scanning them made every
    full collection of a serving process take ~150 ms, the reads' p99."""
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class OnDemandContext:
    """The current snapshot indexed for on-demand scoring of one submitted enterprise.

    Related-party features depend only on enterprises sharing the legal representative or
    the (whitespace-free) registered address, so a submitted firm is scored together with
    exactly those firms and their records, not the whole district.
    """

    snapshot_id: str
    snapshot: dict[str, pd.DataFrame]
    policy: Any
    default_as_of: pd.Timestamp
    by_rep: dict[str, np.ndarray]
    by_address: dict[str, np.ndarray]
    events_by_uscc: dict[str, np.ndarray]
    inspections_by_uscc: dict[str, np.ndarray]
    inspector_ids: frozenset[str]
    catalogue: Any = None  # the policy's feature catalogue, derived once (ms per request)


def address_key(value: object) -> str:
    """The registered address without whitespace, as the related-party features compare it."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return "".join(str(value).split())


def _positions(values: pd.Series) -> dict[str, np.ndarray]:
    codes, uniques = pd.factorize(values.astype("string").fillna(""))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return {str(u): order[bounds[i]:bounds[i + 1]] for i, u in enumerate(uniques)}


def build_on_demand_context(settings: Settings) -> OnDemandContext:
    from serving.scoring import load_context

    context = load_context(settings)
    snapshot = {name: frame.reset_index(drop=True) for name, frame in context.snapshot.items()}
    enterprises = snapshot["enterprises"]
    addresses = enterprises["registered_address"].map(address_key)
    events = snapshot.get("enterprise_events", pd.DataFrame(columns=["uscc"]))
    inspections = snapshot.get("inspections", pd.DataFrame(columns=["uscc"]))
    inspectors = snapshot.get("inspectors", pd.DataFrame(columns=["inspector_id"]))
    return OnDemandContext(
        snapshot_id=context.snapshot_id, snapshot=snapshot, policy=context.policy,
        default_as_of=context.as_of,
        by_rep=_positions(enterprises["legal_rep_id"]),
        by_address=_positions(addresses),
        events_by_uscc=_positions(events["uscc"]),
        inspections_by_uscc=_positions(inspections["uscc"]),
        inspector_ids=frozenset(inspectors["inspector_id"].astype(str)),
        catalogue=context.policy.feature_catalogue(),
    )


class ServiceCache:
    """Per-app cache; every getter is thread-safe (sync endpoints run in a thread pool).

    `freeze_after_load` (set by `riskmatrix serve`) freezes the collector's view after the
    champion or the on-demand context loads, see `freeze_long_lived`; `warm_on_publish`
    (also set by `serve`) serialises a newly published run's decisions in the background
    thread that noticed it, see `warm_decisions`."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.freeze_after_load = False
        self.warm_on_publish = False  # `riskmatrix serve`: see `warm_decisions`
        # On-demand scorings computed at once: CPU-bound pandas code holds the GIL, so more
        # in parallel only adds switching.
        self.scoring_executor = ThreadPoolExecutor(max_workers=ON_DEMAND_PARALLEL,
                                                   thread_name_prefix="riskmatrix-score")
        self._lock = threading.Lock()
        # (latest run, generation of published runs), replaced as one value
        self._published: tuple[RunRecord | None, tuple[Any, ...]] = (None, ())
        self._run_checked = float("-inf")
        self._refresh_lock = threading.Lock()
        self._refreshing = False
        self._champion: tuple[Any, str] | None = None
        self._on_demand: OnDemandContext | None = None
        self._names: dict[str, str] | None = None
        self._lists: tuple[float, Any] | None = None
        self._targets: dict[str, tuple[float, frozenset[str]]] = {}
        self._memo: dict[str, tuple[float, Any]] = {}
        # Not `_lock`: that one is held while slow things load, the hot path must not wait.
        self._decisions_lock = threading.Lock()
        self._decisions: OrderedDict[str, tuple[tuple[Any, ...], CachedDecision]] = (
            OrderedDict())

    def preload(self) -> None:
        """Load now what the first requests would otherwise load under their feet: the
        published run, the snapshot (names, on-demand context) and the champion. What is not
        there yet (a new home) stays lazy: its endpoints answer as they do without it."""
        for what, load in (("run", self.latest_run), ("snapshot", self.on_demand),
                           ("names", lambda: self.enterprise_name("")),
                           ("champion", self.champion), ("decisions", self.warm_decisions)):
            try:
                load()
            except Exception as error:  # reported; loaded again on first use
                LOG.info("启动时未预加载 %s / %s not preloaded at start: %s", what, what, error)

    def warm_decisions(self, limit: int | None = None) -> int:
        """Serialise the published run's decisions now (at most `limit`, default the cache's
        size `DECISION_CACHE_ENTRIES`, in code order):
        reads after a start or a new run then find them ready, instead of the first read of
        each firm building it while every other read waits behind it. Returns how many."""
        run = self.latest_run()
        if run is None:
            return 0
        with self.engine.connect() as connection:
            usccs = connection.execute(
                select(enterprise_scores.c.uscc).where(enterprise_scores.c.run_id == run.id)
                .order_by(enterprise_scores.c.uscc)
                .limit(DECISION_CACHE_ENTRIES if limit is None else limit)).scalars().all()
        for uscc in usccs:
            self.decision(str(uscc))
        return len(usccs)

    def latest_run(self) -> RunRecord | None:
        """The run readers see, re-read at most every `RUN_TTL_SECONDS`."""
        if time.monotonic() - self._run_checked > RUN_TTL_SECONDS:
            self._refresh_run()
        return self._published[0]

    def _refresh_run(self) -> None:
        """The latest run and a fingerprint of all complete runs (a late run of an earlier
        date changes class histories without changing the latest run)."""
        run = latest_complete_run(self.engine)
        with self.engine.connect() as connection:
            count, newest = connection.execute(
                select(func.count(), func.max(runs.c.id))
                .where(runs.c.status == RUN_COMPLETE)).one()
        self._published = (run, (None if run is None else run.id, count, newest))
        self._run_checked = time.monotonic()

    def _known_generation(self) -> tuple[Any, ...] | None:
        """The generation of published runs as last checked (no I/O); when the check is older
        than the TTL, one background thread re-checks while readers keep the known one, so
        a new run shows within about `RUN_TTL_SECONDS` and readers never queue behind it."""
        if self._run_checked == float("-inf"):
            return None
        if time.monotonic() - self._run_checked > RUN_TTL_SECONDS:
            with self._refresh_lock:
                if not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._background_refresh, daemon=True,
                                     name="riskmatrix-run-refresh").start()
        return self._published[1]

    def _background_refresh(self) -> None:
        try:
            known = self._published[1]
            self._refresh_run()
            if self.warm_on_publish and self._published[1] != known:
                self.warm_decisions()
        except Exception:  # the store is away: readers keep the known run, next read retries
            LOG.warning("无法刷新最新运行 / could not re-check the latest run", exc_info=True)
        finally:
            self._refreshing = False

    def cached_decision(self, uscc: str) -> CachedDecision | None:
        """The enterprise's decision if it is remembered for the current runs; None when it
        must be loaded (never touches the store: safe on the event loop)."""
        generation = self._known_generation()
        found = self._decisions.get(uscc)
        if generation is None or found is None or found[0] != generation:
            return None
        with self._decisions_lock:
            if uscc in self._decisions:
                self._decisions.move_to_end(uscc)
        return found[1]

    def decision(self, uscc: str) -> CachedDecision:
        """The enterprise's published decision (`NotFoundError` when it has none), loaded
        once per published run and kept while it is read."""
        from serving.api.decisions import enterprise_decision

        if self._known_generation() is None:
            self.latest_run()
        run, generation = self._published
        found = self._decisions.get(uscc)
        if found is not None and found[0] == generation:
            return found[1]
        decision = enterprise_decision(self.engine, uscc, run=run, name=self.enterprise_name(uscc))
        cached = CachedDecision(decision.model_dump_json(by_alias=True).encode(),
                                decision.run_id, decision.as_of)
        with self._decisions_lock:
            self._decisions[uscc] = (generation, cached)
            self._decisions.move_to_end(uscc)
            while len(self._decisions) > DECISION_CACHE_ENTRIES:
                self._decisions.popitem(last=False)
        return cached

    def enterprise_name(self, uscc: str) -> str | None:
        """The registered name in the current snapshot (None when there is none or no
        snapshot can be loaded: a name is a nicety, the decision stands without it)."""
        if self._names is None:
            try:
                enterprises = self.on_demand().snapshot["enterprises"]
            except Exception:
                return None
            self._names = {str(u): str(n) for u, n in zip(
                enterprises["uscc"], enterprises["name"], strict=True) if not pd.isna(n)}
        return self._names.get(uscc)

    def cached_inspector_targets(self, inspector_id: str) -> frozenset[str] | None:
        """The firms on an inspector's lists if known for the current lists (no I/O)."""
        lists = self._lists
        found = self._targets.get(inspector_id)
        if lists is None or found is None or found[0] != lists[0] or (
                time.monotonic() - lists[0] > LISTS_TTL_SECONDS):
            return None
        return found[1]

    def inspector_targets(self, inspector_id: str, build: Any) -> frozenset[str]:
        """The firms on an inspector's lists (`build` makes the ranked lists when stale)."""
        from serving.api.decisions import inspector_targets

        ranked = self.ranked_lists(build)
        built_at = self._lists[0] if self._lists is not None else 0.0
        targets = frozenset(inspector_targets(ranked, inspector_id))
        self._targets[inspector_id] = (built_at, targets)
        return targets

    def champion(self) -> tuple[Any, str]:
        """The champion model and version (reloaded when the alias has moved since)."""
        with self._lock:
            if self._champion is None:
                from serving.scoring import champion

                self._champion = champion(self.settings)
                if self.freeze_after_load:
                    freeze_long_lived()
            return self._champion

    def on_demand(self) -> OnDemandContext:
        with self._lock:
            if self._on_demand is None:
                self._on_demand = build_on_demand_context(self.settings)
                if self.freeze_after_load:
                    freeze_long_lived()
            return self._on_demand

    def ranked_lists(self, build: Any) -> Any:
        """The open campaigns' ranked lists, rebuilt at most every `LISTS_TTL_SECONDS`."""
        now = time.monotonic()
        with self._lock:
            if self._lists is None or now - self._lists[0] > LISTS_TTL_SECONDS:
                self._lists = (now, build())
            return self._lists[1]

    def memo(self, key: str, build: Any, ttl: float) -> Any:
        """`build()` remembered under `key` for `ttl` seconds (errors are not remembered)."""
        now = time.monotonic()
        with self._lock:
            found = self._memo.get(key)
            if found is not None and now - found[0] <= ttl:
                return found[1]
        value = build()
        with self._lock:
            self._memo[key] = (now, value)
        return value

    def clear(self) -> None:
        """Forget everything (after a new run, a new champion or a new campaign step)."""
        with self._lock:
            self._published, self._run_checked = (None, ()), float("-inf")
            self._champion = self._on_demand = self._lists = self._names = None
            self._memo.clear()
            self._targets.clear()
        with self._decisions_lock:
            self._decisions.clear()
