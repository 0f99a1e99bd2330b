"""What every benchmark needs: free ports, isolated names, Herald components as real
processes (logs in ``.run/bench/<run>/``), peak-RSS and load-average sampling,
percentiles, the machine's description and appending results to ``bench/RESULTS.md``.

Everything a benchmark starts is isolated from the shared servers' other users: its
own RabbitMQ virtual host (or, without ``rabbitmqctl``, its own exchanges and queue
names), its own database names, its own Redis key prefix and free ports. ``Run.close``
stops the processes and drops what the run created; the shared servers keep running.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
import psutil
from herald_common.auth import TokenIssuer, generate_private_key_pem
from herald_testing.infra import infra_env
from herald_testing.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
RUN_ROOT = ROOT / ".run" / "bench"
INFRA = ROOT / "dev" / "infra.sh"


# The servers' URLs: the environment first, then ``.run/infra.env``.
SERVERS = infra_env()
MONGO = SERVERS["HERALD_MONGODB_URI"]
AMQP = SERVERS["HERALD_AMQP_URL"]
REDIS = SERVERS["HERALD_REDIS_URL"]


def results_path() -> Path:
    """``bench/RESULTS.md``, or ``HERALD_BENCH_RESULTS`` (the smoke tests write elsewhere);
    plots go next to it."""
    return Path(os.environ.get("HERALD_BENCH_RESULTS", RESULTS))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 1]; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    return {
        "p50": percentile(seconds, 0.50) * 1000,
        "p95": percentile(seconds, 0.95) * 1000,
        "p99": percentile(seconds, 0.99) * 1000,
        "max": (max(seconds) if seconds else 0.0) * 1000,
    }


def ratio(value: float, ceiling: float) -> str:
    if not ceiling:
        return "-"
    share = value / ceiling
    return f"{share:.2f}" if share >= 0.1 else f"{share:.3f}"


def _rabbitmqctl(*args: str) -> bool:
    try:
        result = subprocess.run(
            ["/bin/bash", str(INFRA), "rabbitmqctl", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@dataclass
class Process:
    """One started process: its command, log file and psutil handle."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


COMPONENTS = {
    "notifications": "herald_notifications",
    "recommendations": "herald_recommendations",
    "scheduler": "herald_scheduler",
    "gateway": "herald_gateway",
    "users": "herald_users",
}


@dataclass
class Run:
    """One benchmark run's isolated names, processes and clean-up."""

    label: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processes: list[Process] = field(default_factory=list)
    databases: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)
    vhost: str | None = None
    # The run's signing key: the users service signs with it (``HERALD_USERS_PRIVATE_KEY_PEM``),
    # every other component verifies with its public half.
    private_pem: str = field(default_factory=generate_private_key_pem, repr=False)
    issuer: TokenIssuer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.issuer = TokenIssuer(self.private_pem, issuer="herald-users", audience="herald")
        self.dir = RUN_ROOT / f"{self.label}-{self.run_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        print(f"run {self.label}-{self.run_id}: logs in {self.dir.relative_to(ROOT)}", flush=True)
        if threading.current_thread() is threading.main_thread():
            # A terminated benchmark still cleans up: SIGTERM unwinds like Ctrl-C.
            signal.signal(signal.SIGTERM, _terminate)
        self.amqp_url = AMQP
        self.mongo_url = MONGO

    # names -------------------------------------------------------------------------
    def db(self, name: str) -> str:
        """An isolated database name (dropped by :meth:`close`)."""
        full = f"bench_{self.label}_{self.run_id}_{name}"
        self.databases.add(full)
        return full

    @property
    def exchange(self) -> str:
        return f"herald.events.bench{self.run_id}"

    @property
    def dead_letter_exchange(self) -> str:
        return f"herald.dlx.bench{self.run_id}"

    def queue(self, name: str) -> str:
        """An isolated queue name (deleted by :meth:`close` with its retry and DLQs)."""
        full = f"bench{self.run_id}.{name}"
        self.queues.add(full)
        return full

    @property
    def redis_prefix(self) -> str:
        return f"herald:gw:bench{self.run_id}"

    def user(self, i: int) -> str:
        return f"b{self.run_id}u{i:07d}"

    def token(self, user_id: str, roles: Iterable[str] = ()) -> str:
        value, _ = self.issuer.issue(user_id, roles=list(roles), ttl=timedelta(hours=6))
        return value

    # broker ------------------------------------------------------------------------
    def own_vhost(self) -> None:
        """Give the run its own RabbitMQ virtual host; every queue and exchange of the
        run lives there and goes with it. Without ``rabbitmqctl`` the run keeps the
        default virtual host with its own exchange and queue names."""
        vhost = f"herald-bench-{self.run_id}"
        amqp = urlparse(AMQP)
        if _rabbitmqctl("add_vhost", vhost) and _rabbitmqctl(
            "set_permissions", "-p", vhost, amqp.username or "guest", ".*", ".*", ".*"
        ):
            self.vhost = vhost
            self.amqp_url = urlunparse(amqp._replace(path=f"/{vhost}"))

    def settings_env(self) -> dict[str, str]:
        """Environment of every component of this run (isolated names, one key)."""
        env = {
            **os.environ,
            **SERVERS,
            "HERALD_AMQP_URL": self.amqp_url,
            "HERALD_MONGODB_URI": self.mongo_url,
            "HERALD_ENVIRONMENT": "local",
            "HERALD_LOG_LEVEL": "WARNING",
            "HERALD_LOG_JSON": "false",
            "HERALD_JWT_PUBLIC_KEY_PEM": self.issuer.public_pem,
            "HERALD_EVENTS_EXCHANGE": self.exchange,
            "HERALD_DEAD_LETTER_EXCHANGE": self.dead_letter_exchange,
            "HERALD_GATEWAY_REDIS_PREFIX": self.redis_prefix,
            "HERALD_GATEWAY_CACHE_QUEUE": self.queue("gateway.cache"),
            "HERALD_NOTIFICATIONS_USERS_QUEUE": self.queue("notifications.users"),
            "HERALD_NOTIFICATIONS_REQUESTS_QUEUE": self.queue("notifications.requests"),
            "HERALD_NOTIFICATIONS_EMAIL_QUEUE": self.queue("notifications.email"),
            "HERALD_RECOMMENDATIONS_ACTIVITY_QUEUE": self.queue("recommendations.activity"),
            "HERALD_RECOMMENDATIONS_USERS_QUEUE": self.queue("recommendations.users"),
            "HERALD_SCHEDULER_QUEUE_PREFIX": self.queue("scheduler"),
        }
        for name in COMPONENTS:
            env[f"HERALD_{name.upper()}_MONGODB_DB"] = self.db(name)
        return env

    def broker_settings(self) -> Any:
        from herald_common.settings import HeraldSettings

        return HeraldSettings(
            service_name="bench",
            amqp_url=self.amqp_url,
            events_exchange=self.exchange,
            dead_letter_exchange=self.dead_letter_exchange,
        )

    # processes ---------------------------------------------------------------------
    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        url: str | None = None,
    ) -> Process:
        log = self.dir / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(
            [*argv], env=env or dict(os.environ), cwd=ROOT, stdout=handle, stderr=handle
        )
        handle.close()
        process = Process(name, popen, log, url)
        self.processes.append(process)
        return process

    def component(self, name: str, **overrides: Any) -> Process:
        """Start Herald component ``name`` on a free port with this run's names;
        ``overrides`` are its settings (``batch_max=500`` → HERALD_<NAME>_BATCH_MAX)."""
        port = free_port()
        env = self.settings_env()
        prefix = f"HERALD_{name.upper()}_"
        env[f"{prefix}PORT"] = str(port)
        env[f"{prefix}HOST"] = "127.0.0.1"
        for key, value in overrides.items():
            env[f"{prefix}{key.upper()}"] = str(value)
        return self.start(
            name, [sys.executable, "-m", COMPONENTS[name]], env, f"http://127.0.0.1:{port}"
        )

    def wait_ready(self, *processes: Process, timeout: float = 180) -> None:
        """Wait until each process answers ``/readyz`` (or fail with its log)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as client:
            for process in processes:
                assert process.url is not None
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{process.url}/readyz").status_code == 200:
                            break
                    if not process.alive():
                        raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{process.name} not ready:\n{process.tail()}")
                    time.sleep(0.2)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.databases:
            import pymongo

            client: Any = pymongo.MongoClient(self.mongo_url)
            try:
                existing = set(client.list_database_names())
                for name in self.databases & existing:
                    client.drop_database(name)
            finally:
                client.close()
        if self.vhost:
            _rabbitmqctl("delete_vhost", self.vhost)
        else:
            _delete_amqp(self)
        _delete_redis(self.redis_prefix)
        # Data of servers the run started itself (FerretDB on SQLite); the logs stay.
        shutil.rmtree(self.dir / "sqlite", ignore_errors=True)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _delete_amqp(run: Run) -> None:
    """Without an own virtual host: delete the run's queues (with their retry and
    dead-letter queues) and exchanges from the default one."""
    import asyncio

    import aio_pika

    scheduler = f"bench{run.run_id}.scheduler"
    bases = [*run.queues, *(f"{scheduler}.{n}" for n in ("users", "activity", "campaigns"))]
    names = [
        n for base in bases for n in (base, f"{base}.dlq", *(f"{base}.retry.{i}" for i in range(5)))
    ]

    async def delete() -> None:
        connection = await aio_pika.connect(run.amqp_url)
        async with connection:
            channel = await connection.channel()
            for name in names:
                try:
                    await channel.queue_delete(name)
                except aio_pika.exceptions.AMQPError:
                    channel = await connection.channel()
            try:
                await channel.queue_delete(f"{run.exchange}.unrouted")
            except aio_pika.exceptions.AMQPError:
                channel = await connection.channel()
            for exchange in (run.exchange, run.dead_letter_exchange, f"{run.exchange}.unrouted"):
                try:
                    await channel.exchange_delete(exchange)
                except aio_pika.exceptions.AMQPError:
                    channel = await connection.channel()

    # close() may be called from inside an event loop: delete from a thread of its own.
    worker = threading.Thread(target=lambda: asyncio.run(delete()))
    worker.start()
    worker.join()


def _delete_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


class Sampler:
    """Peak RSS of named processes (with their children) and the load average, sampled
    every ``interval`` seconds in a thread while a measurement runs."""

    def __init__(self, processes: dict[str, int], interval: float = 0.25) -> None:
        self.pids = processes
        self.interval = interval
        self.peak: dict[str, float] = dict.fromkeys(processes, 0.0)
        self.load: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _rss(self, pid: int) -> float:
        try:
            proc = psutil.Process(pid)
            total = proc.memory_info().rss
            # The benchmark's own process: without the components it started.
            children = [] if pid == os.getpid() else proc.children(recursive=True)
            for child in children:
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return total / 2**20
        except psutil.Error:
            return 0.0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for name, pid in list(self.pids.items()):
                self.peak[name] = max(self.peak.get(name, 0.0), self._rss(pid))
            self.load.append(os.getloadavg()[0])

    def watch(self, name: str, pid: int) -> None:
        """Sample one more process from now on (a component started mid-measure)."""
        self.peak.setdefault(name, 0.0)
        self.pids[name] = pid

    def __enter__(self) -> Sampler:
        self.load.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.load.append(os.getloadavg()[0])

    def load_text(self) -> str:
        if not self.load:
            return "-"
        return f"{min(self.load):.2f}-{max(self.load):.2f} (1-min load average, {os.cpu_count()} cores)"

    def rss_text(self) -> str:
        return ", ".join(f"{name} {mb:.0f} MB" for name, mb in self.peak.items())


def _version(argv: list[str]) -> str:
    if not shutil.which(argv[0]):
        return "?"
    with contextlib.suppress(Exception):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    return "?"


def server_versions() -> dict[str, str]:
    """Versions of the servers the run talks to, asked from the servers themselves."""
    versions: dict[str, str] = {}
    with contextlib.suppress(Exception):
        import pymongo

        client: Any = pymongo.MongoClient(MONGO, serverSelectionTimeoutMS=3000)
        info = client.admin.command("buildInfo")
        versions["MongoDB-compatible server"] = (
            "FerretDB 1.24 (dev/ferretdb build) on PostgreSQL"
            if "ferretdbVersion" in info
            else f"MongoDB {info.get('version')}"
        )
        client.close()
    with contextlib.suppress(Exception):
        import redis

        r = redis.Redis.from_url(REDIS)
        versions["Redis"] = str(r.info("server")["redis_version"])
        r.close()
    with contextlib.suppress(Exception):
        import aio_pika

        versions["aio-pika"] = aio_pika.__version__
    return versions


def machine() -> str:
    """One line: cores, memory, OS, Python and server versions."""
    memory = psutil.virtual_memory().total / 2**30
    versions = ", ".join(f"{k} {v}" for k, v in server_versions().items())
    return (
        f"{os.cpu_count()} cores ({platform.machine()}), {memory:.0f} GiB RAM, "
        f"{platform.platform(terse=True)}; Python {platform.python_version()}; {versions}"
    )


def append_results(
    title: str,
    command: str,
    parameters: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    load: str,
    notes: str = "",
    images: Sequence[Path] = (),
    results: Path | None = None,
) -> None:
    """Append one section (date, machine, parameters, load, a table) to RESULTS.md."""
    results = results or results_path()
    now = datetime.now(UTC)
    lines = [
        "",
        f"## {title} ({now:%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{command}` — {parameters}.",
        "",
        f"Machine: {machine()}. Load during the run: {load}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    for image in images:
        rel = os.path.relpath(image, results.parent)
        lines += ["", f"![{image.stem}]({rel})"]
    with results.open("a") as f:
        f.write("\n".join(lines) + "\n")


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    Console(width=200).print(table)


@dataclass
class Load:
    """What a closed-loop HTTP load produced."""

    latencies: list[float]
    errors: int
    elapsed: float
    first_error: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


async def http_load(
    url: str,
    request: Any,
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
) -> Load:
    """``concurrency`` connections, each sending ``request(i)`` → ``(method, path, json,
    headers)`` one after another for ``warmup`` + ``seconds``. Requests sent during the
    last ``seconds`` are measured; the window closes when the last of them completes.
    A non-200 answer or a GraphQL ``errors`` counts as an error."""
    import asyncio

    import aiohttp

    latencies: list[float] = []
    errors = 0
    first_error = ""
    counter = 0
    measuring = warmup <= 0
    stop = False
    started = time.perf_counter()
    last_end = started
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(
        url, connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def worker() -> None:
            nonlocal counter, errors, first_error, last_end
            while not stop:
                counter += 1
                method, path, body, headers = request(counter)
                # A request counts if it was sent inside the window, even if it
                # completes after it closes (the window then ends with it).
                counted = measuring
                t0 = time.perf_counter()
                try:
                    async with session.request(method, path, json=body, headers=headers) as r:
                        payload = await r.read()
                        ok = r.status == 200 and b'"errors"' not in payload[:20000]
                except (aiohttp.ClientError, TimeoutError) as exc:
                    ok, payload = False, repr(exc).encode()
                if not counted:
                    continue
                t1 = time.perf_counter()
                last_end = max(last_end, t1)
                if ok:
                    latencies.append(t1 - t0)
                else:
                    errors += 1
                    first_error = first_error or payload[:300].decode(errors="replace")

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        if warmup > 0:
            await asyncio.sleep(warmup)
            measuring = True
        started = last_end = time.perf_counter()
        await asyncio.sleep(seconds)
        measuring = False
        stop = True
        await asyncio.gather(*tasks)
    elapsed = max(last_end - started, seconds)
    return Load(latencies, errors, elapsed, first_error)


SERVER_LABELS = {
    "ferretdb": "FerretDB",
    "rabbitmq": "RabbitMQ",
    "redis": "Redis",
}


def server_pids(names: Sequence[str] = ("ferretdb", "rabbitmq", "redis")) -> dict[str, int]:
    """The shared servers' processes (from ``.run/pids``), for RSS sampling only."""
    found: dict[str, int] = {}
    for name, label in ((n, SERVER_LABELS[n]) for n in names):
        with contextlib.suppress(OSError, ValueError):
            pid = int((ROOT / ".run" / "pids" / f"{name}.pid").read_text().strip())
            if psutil.pid_exists(pid):
                found[label] = pid
    return found


def seed_replica(
    mongo_url: str, db: str, users: Sequence[str], opted_in: Any, chunk: int = 1000
) -> None:
    """Users straight into a service's user replica, as ``user.registered`` leaves them;
    ``opted_in(i)`` says whether user ``i`` takes promotions."""
    import pymongo
    from herald_common import replica
    from herald_common.preferences import Preferences

    client: Any = pymongo.MongoClient(mongo_url)
    coll = client[db][replica.COLLECTION]
    now = datetime.now(UTC)
    yes = Preferences(promotions=True, max_promotions_per_day=None).model_dump(mode="json")
    no = Preferences(promotions=False, max_promotions_per_day=None).model_dump(mode="json")
    try:
        for start in range(0, len(users), chunk):
            docs = [
                {
                    "_id": uid,
                    "bucket": replica.bucket_of(uid),
                    "revision": 1,
                    "deleted": False,
                    "name": f"User {start + k}",
                    "email": f"{uid}@example.com",
                    "preferences": yes if opted_in(start + k) else no,
                    "roles": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for k, uid in enumerate(users[start : start + chunk])
            ]
            coll.insert_many(docs, ordered=False)
    finally:
        client.close()


async def metric(url: str, name: str) -> float:
    """Sum of a Prometheus counter's samples on a component's ``/metrics``."""
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(f"{url}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


LOAD_HEADER = ["measure", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "ratio to bare FastAPI"]


def load_row(label: str, load: Load, ceiling_rate: float) -> list[str]:
    """One row of :data:`LOAD_HEADER`: rate, percentiles, errors, ratio to the ceiling."""
    lat = latency_summary(load.latencies)
    return [
        label,
        f"{load.rate:,.0f}",
        f"{lat['p50']:.1f}",
        f"{lat['p95']:.1f}",
        f"{lat['p99']:.1f}",
        str(load.errors),
        ratio(load.rate, ceiling_rate),
    ]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def prime(url: str, tokens: Sequence[str], body: dict[str, Any], concurrency: int) -> None:
    """One GraphQL ``body`` per token, ``concurrency`` at a time: the gateway's cache then
    holds every user's answer (a warm cache's steady state for the measure after it)."""
    import asyncio

    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def one(token: str) -> None:
            async with semaphore:
                async with session.post("/graphql", json=body, headers=bearer(token)) as r:
                    await r.read()

        await asyncio.gather(*(one(t) for t in tokens))


def run_to_end(
    run: Run,
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    timeout: float,
    sampler: Sampler | None = None,
) -> tuple[Process, float]:
    """Run a command of a component (a batch job, an evaluation) as a process of the
    run, sampled by ``sampler`` while it runs, and wait for it; returns the process and
    its wall time. A non-zero exit or the timeout raises with the end of its log."""
    started = time.perf_counter()
    process = run.start(name, argv, env)
    if sampler is not None:
        sampler.watch(name, process.pid)
    try:
        code = process.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        process.stop()
        raise RuntimeError(
            f"{name} did not finish within {timeout:g} s:\n{process.tail()}"
        ) from None
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{name} exited with {code}:\n{process.tail()}")
    return process, elapsed


def py_spy(binary: str, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` of ``pid`` for ``seconds`` into ``out`` (collapsed stacks);
    py-spy is a tool of the person profiling, not a dependency of the benchmarks."""
    log = out.with_suffix(".log").open("wb")
    try:
        return subprocess.Popen(
            [
                binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                "--rate", "100", "--gil", "--format", "raw", "--nonblocking", "--output", str(out),
            ],
            stdout=log,
            stderr=log,
        )  # fmt: skip
    finally:
        log.close()


def _frame(text: str) -> str:
    """``func (path/to/module.py:12)`` → ``func (module path)`` without the line."""
    name, _, where = text.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def py_spy_summary(label: str, raw: Path, top: int = 8) -> str:
    """The top functions of a py-spy recording (collapsed stacks, samples of the thread
    holding the GIL): by own samples (where the Python CPU went) and, for Herald's own
    code, by samples with the function on the stack."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    with contextlib.suppress(OSError):
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame(f) for f in stack.split(";")[1:]]  # [0] is the thread
            if not frames:
                continue
            total += count
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for frame in {f for f in frames if "herald_" in f and "__main__" not in f}:
                inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return f"py-spy, {label}: no samples ({raw.name})."

    def listing(counts: dict[str, int]) -> str:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return "; ".join(f"`{name}` {100 * n / total:.0f} %" for name, n in ranked) or "-"

    return (
        f"py-spy, {label} ({total:,} samples at 100/s while holding the GIL): "
        f"own time {listing(own)}. Herald code on the stack: {listing(inclusive)}."
    )
