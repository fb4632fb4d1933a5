"""Private Redis servers started from Debian's redis-server, for the layouts the index runs on: one server with a
replica, and a Redis Cluster (primaries with replicas). Used by the tests of those layouts and by `make scale`
(ops/scale); nothing here runs in production.

Each server listens on 127.0.0.1 with a password, keeps nothing on disk (no RDB, no AOF) and is stopped with its
group. Ports are taken from free ones (a cluster node also needs its port + 10000 free for the cluster bus).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import key_slot

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
CLUSTER_BUS_OFFSET = 10_000


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, bus: bool = False) -> list[int]:
    """`count` consecutive free ports (with their cluster bus ports free too when `bus`)."""
    for _ in range(200):
        first = random.randint(20_000, 40_000)
        ports = list(range(first, first + count))
        if all(_port_free(port) and (not bus or _port_free(port + CLUSTER_BUS_OFFSET)) for port in ports):
            return ports
    raise RuntimeError("no free ports for Redis servers")


@dataclass
class Server:
    port: int
    password: str
    directory: Path
    process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=10)

    def start(self, *args: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--requirepass", self.password,
                "--masterauth", self.password,
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(self.directory / "redis.log"),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return
            except redis.exceptions.RedisError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def wait_replicated(self, replicas: int, timeout: float = 30) -> None:
        """Until `replicas` replicas hold everything written to this primary so far (a write of its own, then WAIT)."""
        client = self.client()
        client.set(self._own_key(), time.time())
        if client.execute_command("WAIT", replicas, int(timeout * 1000)) < replicas:
            raise RuntimeError(f"replicas of port {self.port} did not catch up within {timeout} s")

    def _own_key(self) -> str:
        """A key this server holds: any, alone; in a cluster, one whose slot it serves."""
        if not self.client().info("cluster").get("cluster_enabled"):
            return "servicearea:probe"
        me = self.client().execute_command("CLUSTER", "MYID").decode()
        ranges = [
            (start, end)
            for start, end, primary, *_ in self.client().execute_command("CLUSTER", "SLOTS")
            if primary[2].decode() == me
        ]
        return next(
            key
            for key in (f"servicearea:probe:{n}" for n in range(100_000))
            if any(start <= key_slot(key.encode()) <= end for start, end in ranges)
        )

    def pause(self, seconds: float) -> None:
        """The server stops answering anything, replication included, for `seconds` (a lagging replica)."""
        self.client().execute_command("DEBUG", "SLEEP", seconds)


@dataclass
class Group:
    """Servers started together and stopped together."""

    servers: list[Server] = field(default_factory=list)
    directory: Path | None = None

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _password() -> str:
    return "".join(random.choices("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=24))


def _group(count: int, *, bus: bool) -> Group:
    directory = Path(tempfile.mkdtemp(prefix="servicearea-redis-"))
    password = _password()
    ports = free_ports(count, bus=bus)
    return Group([Server(port, password, directory / str(port)) for port in ports], directory)


def with_replicas(replicas: int = 1, *, with_enabled_debug: bool = True) -> Group:
    """One primary (servers[0]) and `replicas` replicas of it, in sync."""
    group = _group(1 + replicas, bus=False)
    debug = ("--enable-debug-command", "local") if with_enabled_debug else ()
    try:
        group.servers[0].start(*debug)
        for replica in group.servers[1:]:
            replica.start("--replicaof", "127.0.0.1", str(group.servers[0].port), *debug)
        _wait_in_sync(group.servers[0], replicas)
    except BaseException:
        group.stop()
        raise
    return group


def cluster(primaries: int = 3, replicas: int = 1) -> Group:
    """A Redis Cluster: `primaries` primaries sharing the 16384 slots, each with `replicas` replicas, all in sync
    and agreeing on the slot map. servers[:primaries] are the primaries as created."""
    group = _group(primaries * (1 + replicas), bus=True)
    try:
        for server in group.servers:
            server.start(
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(server.directory / "nodes.conf"),
                "--cluster-node-timeout", "5000",
                "--enable-debug-command", "local",
            )  # fmt: skip
        subprocess.run(
            [
                REDIS_CLI, "-a", group.servers[0].password, "--no-auth-warning",
                "--cluster", "create", *(f"127.0.0.1:{server.port}" for server in group.servers),
                "--cluster-replicas", str(replicas), "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        _wait_cluster_ready(group, primaries, replicas)
    except BaseException:
        group.stop()
        raise
    return group


def _online_replicas(server: Server) -> int:
    info = server.client().info("replication")
    return sum(
        1
        for key, value in info.items()
        if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )


def _slots_listed_with(server: Server, replicas: int) -> bool:
    """Whether the node's CLUSTER SLOTS (what clients build their slot map from) lists every slot range with its
    replicas."""
    ranges = server.client().execute_command("CLUSTER", "SLOTS")
    return sum(end - start + 1 for start, end, *_ in ranges) == 16384 and all(
        len(entry) - 3 >= replicas for entry in ranges
    )


def _wait_in_sync(primary: Server, replicas: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _online_replicas(primary) >= replicas:
            return
        time.sleep(0.1)
    raise RuntimeError(f"replicas of port {primary.port} did not come in sync")


def _wait_cluster_ready(group: Group, primaries: int, replicas: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.exceptions.RedisError):
            if all(server.client().cluster("info").get("cluster_state") == "ok" for server in group.servers):
                masters, _ = primaries_and_replicas(group)
                if (
                    len(masters) == primaries
                    and all(_online_replicas(master) >= replicas for master in masters)
                    and all(_slots_listed_with(server, replicas) for server in group.servers)
                ):
                    return  # and every node tells clients about the replicas too
        time.sleep(0.2)
    raise RuntimeError("the Redis Cluster did not become ready")


def primaries_and_replicas(group: Group) -> tuple[list[Server], list[Server]]:
    """The group's servers by their current role."""
    roles = {server.port: server.client().info("replication")["role"] for server in group.servers}
    return (
        [server for server in group.servers if roles[server.port] == "master"],
        [server for server in group.servers if roles[server.port] != "master"],
    )


def command_calls(server: Server, *commands: str) -> int:
    """How many times the server ran these commands since it started (INFO commandstats)."""
    stats = server.client().info("commandstats")
    return sum(int(stats.get(f"cmdstat_{command.lower()}", {}).get("calls", 0)) for command in commands)


def error_counts(server: Server) -> dict[str, int]:
    """Error replies the server sent, by their first word (INFO errorstats: CROSSSLOT, MOVED, ASK, ...)."""
    stats = server.client().info("errorstats")
    return {key.removeprefix("errorstat_"): int(value["count"]) for key, value in stats.items()}


def node_id(server: Server) -> str:
    return server.client().execute_command("CLUSTER", "MYID").decode()


def move_slot(group: Group, slot: int) -> tuple[Server, Server]:
    """Moves a slot, with its keys, from the primary serving it to another primary, as resharding does (IMPORTING,
    MIGRATING, MIGRATE, then every node told the new owner). Returns (source, target)."""
    primaries, _ = primaries_and_replicas(group)
    owners = {node_id(server): server for server in primaries}
    source = next(
        owners[entry[2][2].decode()]
        for entry in primaries[0].client().execute_command("CLUSTER", "SLOTS")
        if entry[0] <= slot <= entry[1]
    )
    target = next(server for server in primaries if server.port != source.port)
    source_id, target_id = node_id(source), node_id(target)
    target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while keys := source.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
        source.client().execute_command(
            "MIGRATE", "127.0.0.1", target.port, "", 0, 10_000, "AUTH", target.password, "KEYS", *keys
        )
    for server in (target, source, *(other for other in primaries if other not in (source, target))):
        server.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    return source, target
