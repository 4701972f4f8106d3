"""Service throughput: the enterprise-score read and on-demand scoring against a bare endpoint.

Starts `riskmatrix serve` (uvicorn, `--workers` processes) on loopback for a prepared home, and
in the same run two bare FastAPI references with the same champion, no auth, no audit, no
contract validation, no SHAP and no reasons: "bare vector" returns the LightGBM prediction
for a posted feature vector; "bare record" takes the same submitted record JSON as
`POST /api/score`, builds its features with the project's own pipeline
(`serving.api.ondemand.mini_snapshot`, `features.enterprise_features.build_enterprise_features`)
and returns the prediction (its probability is checked against the service's before loading).
Each target is loaded at concurrency 1 and 32 for `--seconds` by `wrk` (one
thread, a Lua script for the bearer header, per-request URLs cycling over every scored firm,
and 5xx counting) — a C load generator, so the Python server gets the cores; without `wrk`
on PATH an async httpx client does the same and the output says so (it steals CPU from the
server: its figures are pessimistic). The table gives requests/s, p50/p99 latency, 5xx and 4xx
counts, each row's latency as a multiple of each bare reference's at the same concurrency, and
the CPU steal while it ran (/proc/stat). Rows are measured in `--rounds` interleaved rounds and
the table shows each row's median round (every round's p99 is listed below it): on this kind
of shared VM a single run's p99 moves with the hypervisor's steal. Never pass/fail: it prints
figures (exit 1 only on a server error).

    python -m bench.bench_service --home var              # a home where the demo ran
    python -m bench.bench_service --build-home /tmp/bench  # build a small one first
    python -m bench.bench_service --home var --seconds 60  # the bounded zero-5xx run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

WRK_SCRIPT = textwrap.dedent('''
    -- riskmatrix bench: per-request path, auth header, body; counts 5xx and 4xx per thread.
    local threads = {}
    function setup(thread) table.insert(threads, thread) end
    function init(args)
      paths = {}
      for line in io.lines(os.getenv("BENCH_PATHS")) do table.insert(paths, line) end
      method = os.getenv("BENCH_METHOD")
      body = nil
      local file = os.getenv("BENCH_BODY")
      if file ~= nil and file ~= "" then
        local handle = io.open(file, "rb"); body = handle:read("*a"); handle:close()
      end
      headers = {["Content-Type"] = "application/json"}
      local token = os.getenv("BENCH_TOKEN")
      if token ~= nil and token ~= "" then headers["Authorization"] = "Bearer " .. token end
      index = 0; server_errors = 0; client_errors = 0
    end
    function request()
      index = index % #paths + 1
      return wrk.format(method, paths[index], headers, body)
    end
    function response(status, headers, body)
      if status >= 500 then server_errors = server_errors + 1
      elseif status >= 400 then client_errors = client_errors + 1 end
    end
    function done(summary, latency, requests)
      local s5, s4 = 0, 0
      for _, t in ipairs(threads) do
        s5 = s5 + t:get("server_errors"); s4 = s4 + t:get("client_errors")
      end
      local e = summary.errors
      io.write(string.format("RESULT %d %.6f %.3f %.3f %d %d %d\\n", summary.requests,
        summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        s5, s4, e.connect + e.read + e.write + e.timeout))
    end
''')

BARE_APP = textwrap.dedent('''
    """Reference: the champion's prediction for a feature vector, nothing else."""
    import os
    from pathlib import Path

    import pandas as pd
    from fastapi import FastAPI

    from serving.scoring import champion
    from serving.settings import load_settings

    model, _ = champion(load_settings(Path(os.environ["RISKMATRIX_HOME"])))
    columns = list(model.feature_names_)
    app = FastAPI()

    @app.post("/predict")
    def predict(features: dict[str, float | None]) -> dict[str, float]:
        frame = pd.DataFrame([features], columns=columns, dtype="float64")
        return {"probability": float(model.predict_proba(frame)[0, 1])}
''')


BARE_RECORD_APP = textwrap.dedent('''
    """Reference: the champion's prediction for a submitted record (the body of POST
    /api/score), its features built by the project's pipeline on the same mini snapshot;
    the rows are cast to the snapshot's dtypes, nothing else (no contract rules)."""
    import os
    from pathlib import Path
    from typing import Any

    import pandas as pd
    from fastapi import FastAPI

    from features.enterprise_features import build_enterprise_features
    from serving.api.cache import build_on_demand_context
    from serving.api.ondemand import SUBMITTED_TABLES, mini_snapshot
    from serving.scoring import champion
    from serving.settings import load_settings

    settings = load_settings(Path(os.environ["RISKMATRIX_HOME"]))
    model, _ = champion(settings)
    context = build_on_demand_context(settings)
    columns = list(model.feature_names_)
    feature_kwargs = context.policy.enterprise_feature_kwargs()
    app = FastAPI()

    def typed(rows: list[dict[str, Any]], table: str) -> pd.DataFrame:
        base = context.snapshot[table]
        return pd.DataFrame(rows, columns=base.columns).astype(base.dtypes.to_dict())

    @app.post("/predict-record")
    def predict_record(record: dict[str, Any]) -> dict[str, float]:
        submitted = {"enterprise": [record["enterprise"]], "events": record.get("events", []),
                     "inspections": record.get("inspections", [])}
        tables = {table: typed(submitted[field], table)
                  for field, table in SUBMITTED_TABLES.items()}
        mini, uscc = mini_snapshot(context, tables)
        day = pd.Timestamp(record["as_of"]) if record.get("as_of") else context.default_as_of
        features = build_enterprise_features(mini, day, **feature_kwargs)
        frame = features.loc[[uscc], columns].astype("float64")
        return {"probability": float(model.predict_proba(frame)[0, 1])}
''')
BARE_VECTOR = "bare vector"
BARE_RECORD = "bare record"


@dataclass(frozen=True)
class Result:
    target: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_errors: int
    other_errors: int
    socket_errors: int = 0
    steal_pct: float | None = None  # CPU time the hypervisor took while this row ran

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies from /proc/stat (Linux); None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()
    except OSError:
        return None
    numbers = [int(x) for x in fields[1:9]]
    return numbers[7], sum(numbers)


def steal_between(before: tuple[int, int] | None, after: tuple[int, int] | None
                  ) -> float | None:
    """Percent of CPU time stolen by the hypervisor between two `cpu_times` readings: on a
    shared VM, a few percent of steal is enough to move a p99 by tens of milliseconds."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


def median_round(rounds: list[Result]) -> Result:
    """The round whose p99 is the median (the lower middle one for an even count)."""
    ordered = sorted(rounds, key=lambda r: r.p99_ms)
    return ordered[(len(ordered) - 1) // 2]


def paired_ratios(rows: list[Result], references: list[Result]) -> list[tuple[float, float]]:
    """(p50, p99) of each round's row over the same round's reference: both ran within a
    minute of each other, so the hypervisor's steal moves them together."""
    return [(row.p50_ms / ref.p50_ms, row.p99_ms / ref.p99_ms)
            for row, ref in zip(rows, references, strict=False)
            if row.requests and ref.requests and ref.p50_ms > 0 and ref.p99_ms > 0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.stderr.read().decode()[-2000:]}"
                             if process.stderr else "server exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code < 500:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("server did not start within 120 s")


async def load(urls: list[str], method: str, payload: Any, headers: dict[str, str],
               concurrency: int, seconds: float) -> tuple[list[float], int, int, int]:
    latencies: list[float] = []
    server_errors = other_errors = socket_errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as client:
        async def worker(offset: int) -> None:
            nonlocal server_errors, other_errors, socket_errors
            sent = offset
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    response = await client.request(method, urls[sent % len(urls)],
                                                    json=payload)
                except httpx.HTTPError:
                    socket_errors += 1
                    continue
                sent += 1
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 500:
                    server_errors += 1
                elif response.status_code >= 400:
                    other_errors += 1

        await asyncio.gather(*[worker(k) for k in range(concurrency)])
    return latencies, server_errors, other_errors, socket_errors


def measure_httpx(target: str, urls: list[str], method: str, payload: Any,
                  headers: dict[str, str], concurrency: int, seconds: float) -> Result:
    asyncio.run(load(urls, method, payload, headers, concurrency, min(2.0, seconds)))  # warm up
    started = time.perf_counter()
    latencies, server_errors, other_errors, socket_errors = asyncio.run(
        load(urls, method, payload, headers, concurrency, seconds))
    elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return Result(target, concurrency, len(ms), elapsed, float(np.percentile(ms, 50)),
                  float(np.percentile(ms, 99)), server_errors, other_errors, socket_errors)


def run_wrk(wrk: str, script: Path, base: str, paths_file: Path, method: str,
            body_file: Path | None, token: str | None, concurrency: int,
            seconds: float) -> tuple[int, float, float, float, int, int, int]:
    env = {**os.environ, "BENCH_PATHS": str(paths_file), "BENCH_METHOD": method,
           "BENCH_BODY": str(body_file) if body_file else "", "BENCH_TOKEN": token or ""}
    command = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout",
               "30s", "-s", str(script), base]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next((x for x in output.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result:\n{output}")
    parts = line.split()[1:]
    return (int(parts[0]), float(parts[1]), float(parts[2]), float(parts[3]), int(parts[4]),
            int(parts[5]), int(parts[6]))


TARGET_KEYS = ("read", "score", "bare", "bare-record")


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    paths: list[str]
    method: str
    payload: Any
    token: str | None


def measure(target: Target, concurrency: int, seconds: float, wrk: str | None,
            workdir: Path) -> Result:
    """`seconds` of load at `concurrency` after a 2 s warm-up at the same concurrency."""
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    if wrk is None:
        urls = [target.base + p for p in target.paths]
        before = cpu_times()
        result = measure_httpx(target.name, urls, target.method, target.payload, headers,
                               concurrency, seconds)
        return replace(result, steal_pct=steal_between(before, cpu_times()))
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    paths_file = workdir / "paths.txt"
    paths_file.write_text("\n".join(target.paths) + "\n", encoding="utf-8")
    body_file = None
    if target.payload is not None:
        body_file = workdir / "body.json"
        body_file.write_text(json.dumps(target.payload, ensure_ascii=False), encoding="utf-8")
    run_wrk(wrk, script, target.base, paths_file, target.method, body_file, target.token,
            concurrency, min(2.0, seconds))
    before = cpu_times()
    requests, elapsed, p50, p99, server, client, sockets = run_wrk(
        wrk, script, target.base, paths_file, target.method, body_file, target.token,
        concurrency, seconds)
    return Result(target.name, concurrency, requests, elapsed, p50, p99, server, client,
                  sockets, steal_between(before, cpu_times()))


def prepare(home: Path) -> tuple[str, dict[str, Any], dict[str, float | None], str, list[str]]:
    """A scored firm, its submitted record, its feature vector, an admin token and every
    scored firm (the read cycles over them, so the decision cache is filled, not primed)."""
    import pandas as pd

    from features.snapshot import current_snapshot, load_snapshot
    from serving.api.auth import Principal, Role, add_user, get_user, issue_token
    from serving.settings import load_settings
    from serving.store import open_store, scores_frame
    from training.enterprise import EnterpriseData

    settings = load_settings(home)
    engine = open_store(settings.database_url)
    scored = scores_frame(engine)
    if scored.empty:
        raise SystemExit(f"{home}: no published run: run the demo (or --build-home) first")
    if get_user(engine, "bench-admin") is None:
        add_user(engine, "bench-admin", Role.admin, "bench-password")
    token = issue_token(engine, Principal("bench-admin", Role.admin, None))
    snapshot = load_snapshot(current_snapshot(settings.snapshots))
    events = snapshot["enterprise_events"]
    uscc = str(events.loc[events["uscc"].isin(scored.index), "uscc"].value_counts().index[0])

    def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
        records = json.loads(frame.to_json(orient="records", date_format="iso",
                                           force_ascii=False))
        return [{k: v[:10] if isinstance(v, str) and "T00:00:00" in v else v
                 for k, v in r.items()} for r in records]

    def of(name: str) -> pd.DataFrame:
        return snapshot[name][snapshot[name]["uscc"] == uscc]

    from serving.scoring import champion, load_context

    context = load_context(settings)
    record = {"enterprise": rows(of("enterprises"))[0], "events": rows(of("enterprise_events")),
              "inspections": rows(of("inspections")),
              "as_of": f"{context.as_of:%Y-%m-%d}"}
    model, _ = champion(settings)
    features = EnterpriseData(context.snapshot, context.policy).features(context.as_of)
    vector = features.loc[uscc, list(model.feature_names_)].astype(float)
    values = {str(k): float(v) for k, v in vector.to_dict().items()}
    return (uscc, record, {k: None if np.isnan(v) else v for k, v in values.items()}, token,
            [str(u) for u in scored.index])


def build_home(root: Path) -> Path:
    """The small test district of tests/serving with a champion and one nightly run."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serving"))
    from serving_champion import AS_OF, champion_home, settings_for

    from serving.nightly import run_nightly

    home = champion_home(root / "home")
    run_nightly(settings_for(home, f"sqlite:///{home / 'riskmatrix.db'}"), AS_OF,
                progress=False)
    return home


def _ratios(result: Result, reference: Result | None) -> str:
    if reference is None or not result.requests or not reference.requests:
        return f"{'-':>8}{'-':>8}"
    return (f"{result.p50_ms / reference.p50_ms:>7.1f}x"
            f"{result.p99_ms / reference.p99_ms:>7.1f}x")


def table(results: list[Result], references: list[Result] | None = None) -> str:
    """One row per target and concurrency; latency (p50, p99) as a multiple of each bare
    reference's at the same concurrency: "/vector" the bare feature-vector endpoint,
    "/record" the bare record endpoint (`references` default: the bare rows of `results`)."""
    pool = results if references is None else references
    vector = {r.concurrency: r for r in pool if r.target.startswith(BARE_VECTOR)}
    record = {r.concurrency: r for r in pool if r.target.startswith(BARE_RECORD)}
    lines = [f"{'target':<40}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'5xx':>6}"
             f"{'4xx':>6}{'n':>8}{'p50/vector':>11}{'p99':>5}{'p50/record':>11}{'p99':>5}"
             f"{'steal %':>9}"]
    for r in results:
        lines.append(f"{r.target:<40}{r.concurrency:>5}{r.rps:>9.1f}{r.p50_ms:>9.2f}"
                     f"{r.p99_ms:>9.2f}{r.server_errors:>6}{r.other_errors:>6}{r.requests:>8}"
                     f"   {_ratios(r, vector.get(r.concurrency))}"
                     f"   {_ratios(r, record.get(r.concurrency))}"
                     f"{'-' if r.steal_pct is None else f'{r.steal_pct:.1f}':>9}")
    return "\n".join(lines)


def same_prediction(service: str, token: str, bare_record: str, record: dict[str, Any]
                    ) -> tuple[float, float]:
    """The service's and the bare record endpoint's probability for the benchmark record:
    the reference must do the same work (features, model), so they must agree."""
    served = httpx.post(f"{service}/api/score", json=record, timeout=120,
                        headers={"Authorization": f"Bearer {token}"})
    served.raise_for_status()
    bare = httpx.post(f"{bare_record}/predict-record", json=record, timeout=120)
    bare.raise_for_status()
    return float(served.json()["probability"]), float(bare.json()["probability"])


def server_stack() -> str:
    """What uvicorn's "auto" picks in this environment (uvloop/httptools come with
    uvicorn[standard])."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn loop={loop} http={http}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a runtime home with a published run")
    parser.add_argument("--build-home", type=Path, help="build a small home here first")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="load duration per target and concurrency (60 for the bounded "
                             "zero-5xx run)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds over all rows; the table shows each row's "
                             "median round (this VM's CPU steal moves single runs' p99)")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    parser.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto",
                        help="load generator (auto: wrk when on PATH, else httpx)")
    parser.add_argument("--only", nargs="+", choices=list(TARGET_KEYS),
                        default=list(TARGET_KEYS), help="targets to load")
    args = parser.parse_args(argv)
    home = build_home(args.build_home) if args.build_home else args.home
    if home is None:
        parser.error("give --home or --build-home")
    home = home.absolute()
    wrk = shutil.which("wrk") if args.client in ("auto", "wrk") else None
    if args.client == "wrk" and wrk is None:
        parser.error("wrk is not on PATH (Debian: apt-get install wrk)")
    uscc, record, vector, token, scored = prepare(home)
    env = {**os.environ, "RISKMATRIX_HOME": str(home)}
    env.pop("RISKMATRIX_DB_URL", None)
    service_port, bare_port, record_port = free_port(), free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="riskmatrix-bench-"))
    (workdir / "bare_app.py").write_text(BARE_APP, encoding="utf-8")
    (workdir / "bare_record_app.py").write_text(BARE_RECORD_APP, encoding="utf-8")
    bare_env = {**env, "PYTHONPATH": os.pathsep.join([str(workdir), os.getcwd()])}
    service = start([sys.executable, "-m", "serving.cli", "serve", "--port", str(service_port),
                     "--workers", str(args.workers), "--home", str(home)], env, service_port)
    bare = start([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port),
                  "--log-level", "warning"], bare_env, bare_port)
    bare_record = start([sys.executable, "-m", "uvicorn", "bare_record_app:app", "--port",
                         str(record_port), "--log-level", "warning"], bare_env, record_port)
    base = f"http://127.0.0.1:{service_port}"
    record_base = f"http://127.0.0.1:{record_port}"
    targets = {
        "read": Target("enterprise read GET /api/enterprises", base,
                       [f"/api/enterprises/{u}" for u in scored], "GET", None, token),
        "score": Target("on-demand POST /api/score", base, ["/api/score"], "POST", record,
                        token),
        "bare": Target(f"{BARE_VECTOR}: LightGBM POST /predict",
                       f"http://127.0.0.1:{bare_port}", ["/predict"], "POST", vector, None),
        "bare-record": Target(f"{BARE_RECORD}: features+LightGBM", record_base,
                              ["/predict-record"], "POST", record, None),
    }
    client = f"wrk ({wrk}, 1 thread)" if wrk else "httpx async client (wrk not found)"
    print(f"load generator: {client}; server: {server_stack()}, {args.workers} worker(s); "
          f"{os.cpu_count()} CPUs; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rounds: dict[tuple[str, int], list[Result]] = {}
    try:
        served, bare_probability = same_prediction(base, token, record_base, record)
        agree = abs(served - bare_probability) <= 1e-9
        print(f"on-demand probability {served:.12f}, bare record {bare_probability:.12f}"
              f"{'' if agree else '  (DIFFERENT: the references do not do the same work)'}",
              flush=True)
        for round_number in range(1, args.rounds + 1):  # interleaved: drift hits every row
            print(f"round {round_number}/{args.rounds}", flush=True)
            for key in TARGET_KEYS:
                if key not in args.only:
                    continue
                for concurrency in args.concurrency:
                    result = measure(targets[key], concurrency, args.seconds, wrk, workdir)
                    rounds.setdefault((key, concurrency), []).append(result)
                    print(table([result]).splitlines()[1], flush=True)
    finally:
        for process in (service, bare, bare_record):
            process.terminate()
        for process in (service, bare, bare_record):
            process.wait(10)
    print(f"\nriskmatrix service benchmark — {client}; {server_stack()}, {args.workers} "
          f"worker(s); {os.cpu_count()} CPUs; {args.seconds:g} s per row after a 2 s warm-up, "
          f"{args.rounds} rounds; reads cycle over {len(scored)} firms; on-demand firm {uscc}; "
          f"load average after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = [median_round(measured) for measured in rounds.values()]
    print(f"median round of {args.rounds} per row (by p99); every round's p99 ms (steal %):")
    print(table(results))
    for (key, concurrency), measured in rounds.items():
        print(f"  {key:<12} c={concurrency:<3} " + "  ".join(
            f"{r.p99_ms:.1f}" + ("" if r.steal_pct is None else f" ({r.steal_pct:.1f})")
            for r in measured))
    read32 = [r for r in results if r.target.startswith("enterprise") and r.concurrency == 32]
    if read32:
        print(f"target (a): read p99 at 32 = {read32[0].p99_ms:.1f} ms, median of "
              f"{args.rounds} rounds (< 20 ms)")
    for reference in ("bare", "bare-record"):
        for concurrency in args.concurrency:
            paired = paired_ratios(rounds.get(("score", concurrency), []),
                                   rounds.get((reference, concurrency), []))
            if paired:
                print(f"target (b): on-demand / {reference} at c={concurrency}, paired by round "
                      f"(p50, p99): " + "  ".join(f"{a:.2f}x {b:.2f}x" for a, b in paired)
                      + f"; median {np.median([a for a, _ in paired]):.2f}x "
                        f"{np.median([b for _, b in paired]):.2f}x (<= 2x)")
    every = [r for measured in rounds.values() for r in measured]
    print(f"target (c): 5xx = {sum(r.server_errors for r in every)}, socket errors = "
          f"{sum(r.socket_errors for r in every)} over every round")
    return 1 if any(r.server_errors for r in every) else 0


if __name__ == "__main__":
    sys.exit(main())
