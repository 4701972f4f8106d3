"""Inspector assignment for drawn targets: ≥ 2 per target, recusal, rotation, balanced load.

Hard rules, applied before any choice is made:
* only on-duty inspectors of the campaign's department (optionally of one field) are drawn;
* an inspector with a declared conflict of interest with a target is never assigned to it (回避);
* when policy says so, nobody from the team of the department's last inspection of a firm
  inspects it again (not the same inspector twice running).

Within those rules the choice is random (seeded, so it is reproducible) and the workload is
balanced: the greedy pass hands each target to the least-loaded eligible inspectors with random
tie-breaks, most constrained targets first; if that leaves loads more than one apart (or misses a
per-inspector cap) an exact max-flow with load bounds finds the tightest balanced assignment.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import pandas as pd

from features.contract import LIST_SEPARATOR
from supervision.campaigns import CampaignError, as_list
from supervision.sampling_policy import AssignmentPolicy


class StaffingError(CampaignError):
    """Some targets cannot be staffed; `unstaffable` maps each uscc to its bilingual reason."""

    def __init__(self, message: str, unstaffable: dict[str, str]):
        super().__init__(message)
        self.unstaffable = unstaffable


@dataclass(frozen=True)
class _Candidates:
    targets: list[str]
    inspectors: list[str]
    allowed: np.ndarray  # bool, targets × inspectors
    conflicted: np.ndarray
    repeated: np.ndarray


def _truthy(series: pd.Series) -> pd.Series:
    text = series.astype("string").str.strip().str.lower()
    return text.isin(["true", "1", "yes", "y", "t"]).fillna(False).astype(bool)


def department_pool(
    inspectors: pd.DataFrame, department: str, field: str | None = None
) -> list[str]:
    """Ids of on-duty inspectors of a department (and field), sorted."""
    missing = [c for c in ("inspector_id", "department", "active") if c not in inspectors.columns]
    if missing:
        raise CampaignError(f"执法人员名录缺少列 / inspector roster lacks columns {missing}")
    pool = inspectors.loc[
        (inspectors["department"].astype(str) == department) & _truthy(inspectors["active"])
    ]
    if field is not None:
        has_field = pool["fields"].map(lambda cell: field in as_list(cell))
        pool = pool.loc[has_field.astype(bool)]
    return sorted(pool["inspector_id"].astype(str).unique())


def last_inspectors(
    history: pd.DataFrame | None, department: str, targets: Iterable[str]
) -> dict[str, set[str]]:
    """The team of the department's most recent inspection of each target."""
    if history is None or history.empty:
        return {}
    rows = history.loc[history["uscc"].astype(str).isin(set(targets))]
    if "department" in rows.columns:
        rows = rows.loc[rows["department"].astype(str) == department]
    if rows.empty:
        return {}
    dates = pd.to_datetime(rows["inspection_date"], errors="coerce")
    latest = dates.groupby(rows["uscc"].astype(str)).transform("max")
    rows = rows.loc[(dates == latest).to_numpy()]
    team: dict[str, set[str]] = {}
    for uscc, cell in zip(rows["uscc"].astype(str), rows["inspectors"], strict=True):
        team.setdefault(uscc, set()).update(as_list(cell))
    return team


def _candidates(
    targets: list[str],
    pool: list[str],
    conflicts: pd.DataFrame | None,
    previous: dict[str, set[str]],
) -> _Candidates:
    index_t = {u: i for i, u in enumerate(targets)}
    index_i = {p: j for j, p in enumerate(pool)}
    conflicted = np.zeros((len(targets), len(pool)), dtype=bool)
    if conflicts is not None and not conflicts.empty:
        for uscc, inspector in zip(conflicts["uscc"].astype(str),
                                   conflicts["inspector_id"].astype(str), strict=True):
            if uscc in index_t and inspector in index_i:
                conflicted[index_t[uscc], index_i[inspector]] = True
    repeated = np.zeros_like(conflicted)
    for uscc, team in previous.items():
        for inspector in team:
            if uscc in index_t and inspector in index_i:
                repeated[index_t[uscc], index_i[inspector]] = True
    return _Candidates(targets, pool, ~conflicted & ~repeated, conflicted, repeated)


def _short_reason(c: _Candidates, row: int, k: int) -> str:
    free = int(c.allowed[row].sum())
    return (
        f"仅{free}名可派的在岗人员, 共{len(c.inspectors)}名, 其中{int(c.conflicted[row].sum())}名"
        f"需回避、{int((c.repeated[row] & ~c.conflicted[row]).sum())}名为上次检查人员 / only "
        f"{free} of {len(c.inspectors)} on-duty inspectors can go: "
        f"{int(c.conflicted[row].sum())} have a conflict of interest, "
        f"{int((c.repeated[row] & ~c.conflicted[row]).sum())} inspected it last time; need {k}"
    )


def _raise_unstaffable(unstaffable: dict[str, str], k: int) -> NoReturn:
    listing = "; ".join(f"{u} ({why})" for u, why in sorted(unstaffable.items()))
    raise StaffingError(
        f"以下检查对象无法配齐{k}名执法人员 / these targets cannot be staffed with {k} "
        f"inspectors: {listing}",
        unstaffable,
    )


class _FlowNetwork:
    """Dinic max-flow on an adjacency list; small and dependency-free."""

    def __init__(self, nodes: int):
        self.head: list[list[int]] = [[] for _ in range(nodes)]
        self.to: list[int] = []
        self.cap: list[int] = []

    def add(self, u: int, v: int, capacity: int) -> int:
        self.head[u].append(len(self.to))
        self.to.append(v)
        self.cap.append(capacity)
        self.head[v].append(len(self.to))
        self.to.append(u)
        self.cap.append(0)
        return len(self.to) - 2

    def max_flow(self, s: int, t: int) -> int:
        total = 0
        while True:
            level = [-1] * len(self.head)
            level[s] = 0
            queue = deque([s])
            while queue:
                u = queue.popleft()
                for e in self.head[u]:
                    if self.cap[e] > 0 and level[self.to[e]] < 0:
                        level[self.to[e]] = level[u] + 1
                        queue.append(self.to[e])
            if level[t] < 0:
                return total
            pointer = [0] * len(self.head)
            while True:
                pushed = self._push(s, t, level, pointer)
                if not pushed:
                    break
                total += pushed

    def _push(self, s: int, t: int, level: list[int], pointer: list[int]) -> int:
        """One augmenting path in the level graph (iterative DFS), returns its flow."""
        path: list[int] = []
        u = s
        while True:
            if u == t:
                flow = min(self.cap[e] for e in path)
                for e in path:
                    self.cap[e] -= flow
                    self.cap[e ^ 1] += flow
                return flow
            advanced = False
            while pointer[u] < len(self.head[u]):
                e = self.head[u][pointer[u]]
                v = self.to[e]
                if self.cap[e] > 0 and level[v] == level[u] + 1:
                    path.append(e)
                    u = v
                    advanced = True
                    break
                pointer[u] += 1
            if not advanced:
                if not path:
                    return 0
                e = path.pop()
                u = self.to[e ^ 1]
                pointer[u] += 1


def _flow_assign(
    allowed: np.ndarray, k: int, low: int, high: int, order: np.ndarray, columns: np.ndarray
) -> np.ndarray | None:
    """An assignment with k per target and every load in [low, high], or None if none exists."""
    n_t, n_i = allowed.shape
    s, t, ss, tt = n_t + n_i, n_t + n_i + 1, n_t + n_i + 2, n_t + n_i + 3
    net = _FlowNetwork(n_t + n_i + 4)
    excess = [0] * (n_t + n_i + 4)
    edges: dict[tuple[int, int], int] = {}
    for row in order:  # s → target with lower = upper = k
        excess[row] += k
        excess[s] -= k
        for col in columns:
            if allowed[row, col]:
                edges[(row, col)] = net.add(row, n_t + col, 1)
    for col in columns:  # inspector → t with bounds [low, high]
        net.add(n_t + col, t, high - low)
        excess[t] += low
        excess[n_t + col] -= low
    net.add(t, s, n_t * k + 1)
    demand = 0
    for node, value in enumerate(excess):
        if value > 0:
            net.add(ss, node, value)
            demand += value
        elif value < 0:
            net.add(node, tt, -value)
    if net.max_flow(ss, tt) < demand:
        return None
    chosen = np.zeros_like(allowed)
    for (row, col), e in edges.items():
        chosen[row, col] = net.cap[e] == 0
    return chosen


def _greedy_assign(
    allowed: np.ndarray, k: int, cap: int | None, rng: np.random.Generator
) -> np.ndarray | None:
    n_t, n_i = allowed.shape
    load = np.zeros(n_i, dtype=int)
    chosen = np.zeros_like(allowed)
    order = np.lexsort((rng.random(n_t), allowed.sum(axis=1)))
    for row in order:
        usable = allowed[row] & (load < cap if cap is not None else True)
        candidates = np.flatnonzero(usable)
        if len(candidates) < k:
            return None
        pick = candidates[np.lexsort((rng.random(len(candidates)), load[candidates]))[:k]]
        chosen[row, pick] = True
        load[pick] += 1
    return chosen


def _spread(chosen: np.ndarray, active: np.ndarray) -> int:
    load = chosen.sum(axis=0)[active]
    return int(load.max() - load.min()) if len(load) else 0


def _balanced_flow(
    allowed: np.ndarray, k: int, cap: int | None, rng: np.random.Generator
) -> np.ndarray | None:
    """Smallest feasible maximum load, then the largest feasible minimum load under it."""
    n_t, _ = allowed.shape
    order = rng.permutation(n_t)
    columns = np.flatnonzero(allowed.any(axis=0))
    columns = columns[rng.permutation(len(columns))]
    slots = n_t * k
    top = min(cap, n_t) if cap is not None else n_t
    fair_high = -(-slots // max(len(columns), 1))
    best = _flow_assign(allowed, k, 0, top, order, columns)
    if best is None:
        return None
    lo, hi = fair_high, top
    while lo < hi:
        mid = (lo + hi) // 2
        if _flow_assign(allowed, k, 0, mid, order, columns) is not None:
            hi = mid
        else:
            lo = mid + 1
    high = lo
    best = _flow_assign(allowed, k, 0, high, order, columns)
    lo, hi = 0, min(high, slots // max(len(columns), 1))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        attempt = _flow_assign(allowed, k, mid, high, order, columns)
        if attempt is not None:
            lo, best = mid, attempt
        else:
            hi = mid - 1
    return best


def _rng(seed: str, campaign_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{campaign_id}|assignment".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def assign_inspectors(
    targets: pd.DataFrame,
    inspectors: pd.DataFrame,
    conflicts: pd.DataFrame | None,
    policy: AssignmentPolicy,
    department: str,
    seed: str,
    campaign_id: str,
    history: pd.DataFrame | None = None,
    field: str | None = None,
) -> pd.DataFrame:
    """Inspectors for each drawn target: uscc, inspectors (';'-joined ids), team_id.

    `targets` needs a `uscc` column (e.g. `DrawEvidence.drawn_frame()`); `history` is the
    inspections table. Raises `StaffingError` naming every target that cannot be staffed.
    """
    k = policy.inspectors_per_target
    codes = sorted(targets["uscc"].astype(str).unique())
    pool = department_pool(inspectors, department, field)
    previous = (last_inspectors(history, department, codes)
                if policy.no_repeat_last_inspectors else {})
    cand = _candidates(codes, pool, conflicts, previous)
    short = {u: _short_reason(cand, i, k) for i, u in enumerate(codes)
             if cand.allowed[i].sum() < k}
    if short:
        _raise_unstaffable(short, k)
    chosen = _choose(cand.allowed, k, policy.max_targets_per_inspector, _rng(seed, campaign_id))
    if chosen is None:
        cap = policy.max_targets_per_inspector
        reason = (f"执法人员每人至多{cap}户, 总量不足 / the cap of {cap} targets per inspector "
                  f"leaves too few inspectors")
        _raise_unstaffable(dict.fromkeys(codes, reason), k)
    teams = [LIST_SEPARATOR.join(sorted(pool[j] for j in np.flatnonzero(chosen[i])))
             for i in range(len(codes))]
    return pd.DataFrame({"uscc": codes, "inspectors": teams, "team_id": teams})


def _choose(
    allowed: np.ndarray, k: int, cap: int | None, rng: np.random.Generator
) -> np.ndarray | None:
    """Greedy first; the exact balanced flow when greedy fails or loads differ by more than 1."""
    active = np.asarray(allowed.any(axis=0), dtype=bool)
    greedy = _greedy_assign(allowed, k, cap, rng)
    if greedy is not None and _spread(greedy, active) <= 1:
        return greedy
    exact = _balanced_flow(allowed, k, cap, rng)
    if exact is None or greedy is None:
        return exact
    return exact if _spread(exact, active) < _spread(greedy, active) else greedy


def workload(assignment: pd.DataFrame, pool: list[str] | None = None) -> pd.Series:
    """Targets per inspector (inspectors of `pool` with no target count as 0)."""
    counts: dict[str, int] = dict.fromkeys(pool or [], 0)
    for cell in assignment["inspectors"]:
        for inspector in as_list(cell):
            counts[inspector] = counts.get(inspector, 0) + 1
    return pd.Series(counts, name="targets", dtype=int).sort_index()
