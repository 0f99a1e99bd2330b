"""Private RabbitMQ, Redis, PostgreSQL and FerretDB servers that a test may stop and
start again.

The shared servers of dev/infra.sh serve every test run on the machine and are never
stopped. These run the same binaries (Debian's rabbitmq-server, redis-server,
postgresql-15 and the repository's ``.run/bin/herald-ferretdb``) on free loopback ports,
with data, logs and the Erlang cookie in a folder of their own: a RabbitMQ node of its
own name (``RABBITMQ_NODENAME``, mnesia and log bases in that folder, its own
distribution port; it registers with the machine's epmd like any node), a Redis without
persistence, a PostgreSQL cluster made by ``initdb`` (as dev/infra.sh configures it; as
root it runs as the ``postgres`` user, like dev/infra.sh's) and a FerretDB on it with
dev/infra.sh's flags. ``stop()`` then ``start()`` is a real restart on the same ports
and the same data directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from .conftest import REPO, free_port

RABBITMQ_LIB_BIN = Path("/usr/lib/rabbitmq/bin")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
FERRETDB_BIN = REPO / ".run" / "bin" / "herald-ferretdb"
HOST = "127.0.0.1"


def amqp_answers(port: int) -> bool:
    """The port speaks AMQP: the protocol header is answered with ``connection.start``."""
    try:
        with socket.create_connection((HOST, port), timeout=3) as s:
            s.settimeout(3)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            frame = s.recv(11)
    except OSError:
        return False
    return len(frame) == 11 and frame[0] == 1 and frame[7:11] == b"\x00\x0a\x00\x0a"


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=3) as s:
            s.settimeout(3)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def mongo_answers(port: int) -> bool:
    """The port answers a MongoDB ``ping`` (FerretDB is up and reaches PostgreSQL)."""
    import pymongo

    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        HOST, port, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000
    )
    try:
        client.admin.command("ping")
    except Exception:  # noqa: BLE001 - any failure means "not answering yet"
        return False
    finally:
        client.close()
    return True


def spawn(
    argv: list[str], log_path: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in a session of its own, no stdin, output appended to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def terminate(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; nothing when it is not running."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def wait_until(check, what: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Poll ``check`` until it holds; fail early when ``process`` exits."""
    deadline = time.monotonic() + timeout
    while not check():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout:.0f}s")
        time.sleep(0.2)


class PrivateRabbitMQ:
    """A RabbitMQ node of its own in ``base`` (see the module docstring)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.node = f"herald-chaos-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        base.mkdir(parents=True, exist_ok=True)
        (base / "mnesia").mkdir(exist_ok=True)
        (base / "log").mkdir(exist_ok=True)
        cookie = base / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        (base / "rabbitmq-env.conf").write_text("")
        # The Prometheus endpoint gives the per-queue series the chart's rules read.
        (base / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
        (base / "rabbitmq.conf").write_text(
            "loopback_users.guest = true\n"
            "log.file.level = info\n"
            "log.console = false\n"
            f"prometheus.tcp.port = {self.metrics_port}\n"
            f"prometheus.tcp.ip = {HOST}\n"
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}/"

    @property
    def metrics(self) -> str:
        return f"{HOST}:{self.metrics_port}"

    def env(self) -> dict[str, str]:
        b = self.base
        return {
            **os.environ,
            "HOME": str(b),  # the Erlang cookie is $HOME/.erlang.cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(b / "mnesia"),
            "RABBITMQ_LOG_BASE": str(b / "log"),
            "RABBITMQ_LOGS": str(b / "log" / "rabbitmq.log"),
            "RABBITMQ_PID_FILE": str(b / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(b / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(b / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """rabbitmqctl of this node."""
        return subprocess.run(
            [str(RABBITMQ_LIB_BIN / "rabbitmqctl"), *args],
            env=self.env(),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ctl_ok(self, *args: str) -> bool:
        return self.ctl(*args).returncode == 0

    def start(self, timeout: float = 180) -> None:
        """Start the node (again: same name, ports and data) and wait for AMQP."""
        self.process = spawn(
            [str(RABBITMQ_LIB_BIN / "rabbitmq-server")],
            self.base / "log" / "server.out",
            env=self.env(),
            cwd=self.base,
        )
        self.starts += 1
        wait_until(lambda: amqp_answers(self.port), "rabbitmq-server", timeout, self.process)

    def stop(self, timeout: float = 120) -> None:
        """``rabbitmqctl stop``: the node shuts down cleanly and its VM exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.ctl("stop", str(self.base / "rabbitmq.pid"), timeout=timeout)
        self._reap(timeout)

    def kill(self) -> None:
        """SIGKILL of the node's whole process group: no clean shutdown at all."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reap(30)

    def _reap(self, timeout: float) -> None:
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        # Children of the node (erl_child_setup, inet_gethost) go with its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


class PrivateRedis:
    """A redis-server of its own in ``base``, without persistence (like dev/infra.sh's)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        base.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 60) -> None:
        argv = ["redis-server", "--bind", HOST, "--port", str(self.port)]
        argv += [
            "--protected-mode",
            "yes",
            "--dir",
            str(self.base),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = spawn(argv, self.base / "server.out")
        wait_until(lambda: redis_answers(self.port), "redis-server", timeout, self.process)

    def stop(self, timeout: float = 30) -> None:
        terminate(self.process, timeout)


class PrivatePostgreSQL:
    """A PostgreSQL 15 cluster of its own (``initdb``), configured like dev/infra.sh's:
    loopback only, trust authentication for the role ``herald``, ``synchronous_commit =
    off``, ``autovacuum_naptime = 5s``, and the database ``ferretdb``. PostgreSQL refuses
    to run as root: as root the cluster belongs to the ``postgres`` user and lives in a
    folder of its own under the system's temporary directory (a pytest folder is private
    to root)."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        self.port = free_port()
        self.data = self.base / "data"
        self.log = self.base / "postgresql.log"
        self.starts = 0
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "herald", "-A", "trust"]
        self._as_owner([*initdb, "-E", "UTF8", "--locale=C.UTF-8"], timeout=120)
        conf = (
            f"listen_addresses = '{HOST}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.base}'\n"
            "max_connections = 300\n"
            "shared_buffers = 128MB\n"
            "synchronous_commit = off\n"
            "log_min_messages = warning\n"
            "autovacuum_naptime = 5s\n"
        )
        self._as_owner(["tee", str(self.data / "postgresql.auto.conf")], stdin=conf)

    @property
    def url(self) -> str:
        """FerretDB's ``-postgresql-url`` for this cluster (dev/infra.sh's form)."""
        return f"postgres://herald@{HOST}:{self.port}/ferretdb?sslmode=disable&pool_max_conns=100"

    def _as_owner(
        self, argv: list[str], *, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stdout}{result.stderr}")
        return result

    def _ctl(self, *args: str, timeout: float = 120) -> None:
        self._as_owner(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-s", *args],
            timeout=timeout,
        )

    def start(self, timeout: float = 120) -> None:
        """``pg_ctl start`` (waits until it accepts connections); the first start creates
        the database ``ferretdb``."""
        self._ctl("-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)
        if self.starts == 0:
            psql = [str(PG_BIN / "psql"), "-X", "-q", "-h", HOST, "-p", str(self.port)]
            subprocess.run(
                [*psql, "-U", "herald", "-d", "postgres", "-c", "CREATE DATABASE ferretdb"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
        self.starts += 1

    def stop(self, timeout: float = 60) -> None:
        """``pg_ctl stop -m fast``: open sessions are ended, the server shuts down cleanly."""
        self._ctl("-m", "fast", "-w", "-t", str(int(timeout)), "stop", timeout=timeout + 10)

    def remove(self) -> None:
        """Stop the cluster if it runs and delete its folder."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._ctl("-m", "immediate", "-w", "-t", "30", "stop", timeout=40)
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateFerretDB:
    """``.run/bin/herald-ferretdb`` on ``postgres`` with dev/infra.sh's flags, on a free
    port, its state folder in ``base``."""

    def __init__(self, base: Path, postgres: PrivatePostgreSQL) -> None:
        self.base = base
        self.postgres = postgres
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        base.mkdir(parents=True, exist_ok=True)
        if not FERRETDB_BIN.exists():
            build = subprocess.run(
                ["/bin/bash", str(REPO / "dev" / "ferretdb" / "build.sh")],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            if build.returncode != 0:
                raise RuntimeError(f"dev/ferretdb/build.sh failed: {build.stderr[-2000:]}")

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}"

    def start(self, timeout: float = 120) -> None:
        argv = [str(FERRETDB_BIN), "-listen-addr", f"{HOST}:{self.port}"]
        argv += ["-postgresql-url", self.postgres.url, "-data-dir", str(self.base)]
        argv += ["-log-level", "error"]
        self.process = spawn(argv, self.base / "ferretdb.log")
        self.starts += 1
        wait_until(lambda: mongo_answers(self.port), "herald-ferretdb", timeout, self.process)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (FerretDB closes its listener, then waits for open connections), then
        SIGKILL after ``timeout``."""
        terminate(self.process, timeout)
