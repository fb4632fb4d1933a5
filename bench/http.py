"""The benchmark over HTTP: the service as production runs it (the Procfile's web process, ops/proc), the
agreement checks (every point's body byte-identical on the lookup and the raw baseline, batches and singles), and
wrk's load on each endpoint."""

from __future__ import annotations

import re
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from django.core.management.base import CommandError

# name -> path: what is measured over HTTP, in this order. Results are keyed http_<name>_<measure>.
HTTP_ENDPOINTS = {
    "index": "/api/v1/lookup/",
    "raw": "/bench/raw-lookup/",
    "plain": "/bench/plain-lookup/",
    "minimal": "/bench/minimal/",
    "trivial": "/bench/trivial/",
}
BATCH_PATH = "/api/v1/lookup/batch/"
BATCH_SIZE = 100
WORKER_CLASS_ARGS = {
    "sync": [],  # gunicorn's default: one request per connection
    "gthread": ["--worker-class", "gthread", "--threads", "1", "--keep-alive", "30"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise CommandError(f"{url} did not come up") from None
            time.sleep(0.2)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def agreement(base: str, queries: list[str], concurrency: int) -> dict:
    """Every query point from the lookup and from the raw baseline, over HTTP: a CommandError unless both
    answer 200 with byte-identical bodies. Also warms both up."""

    def compare(query: str) -> tuple[int, str | None]:
        """The body's length, and how the two answers differ (None when they do not)."""
        index = fetch(f"{base}{HTTP_ENDPOINTS['index']}?{query}")
        raw = fetch(f"{base}{HTTP_ENDPOINTS['raw']}?{query}")
        if index == raw and index[0] == 200:
            return len(index[1]), None
        return len(index[1]), (
            f"{query}: lookup {index[0]}, {len(index[1])} bytes {index[1][:100]!r}; "
            f"raw {raw[0]}, {len(raw[1])} bytes {raw[1][:100]!r}"
        )

    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(compare, queries))
    differ = [difference for _, difference in answers if difference]
    if differ:
        raise CommandError(
            f"over HTTP, the lookup and the raw query differ on {len(differ)} of {len(queries)} points:\n"
            + "\n".join(differ[:5])
        )
    return {"http_agree": True, "http_body_bytes_mean": round(statistics.mean(size for size, _ in answers))}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def batch_agreement(base: str, queries: list[str]) -> dict:
    """The first batches of query points over HTTP: each answer must be byte-identical to the single lookup's."""
    for start in range(0, min(len(queries), 10 * BATCH_SIZE), BATCH_SIZE):
        block = queries[start : start + BATCH_SIZE]
        points = [{k: float(v) for k, v in urllib.parse.parse_qsl(query)} for query in block]
        request = urllib.request.Request(
            f"{base}{BATCH_PATH}", data=orjson.dumps({"points": points}), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            answers = orjson.loads(response.read())["results"]
        for query, answer in zip(block, answers, strict=True):
            status, single = fetch(f"{base}{HTTP_ENDPOINTS['index']}?{query}")
            if status != 200 or orjson.dumps(answer) != single:
                raise CommandError(f"over HTTP, a batch and the single lookup differ at {query}")
    return {"http_batch_agree": True}


def wrk(url: str, points_file: Path, connections: int, duration: int, batch: int | None = None) -> dict:
    """wrk on one endpoint: GET lookups of the query points, or with `batch`, POSTs of that many points each."""
    script = Path(__file__).resolve().parent / ("batch.lua" if batch else "wrk.lua")
    completed = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--timeout", "30s", "--latency",
         "-s", str(script), url, "--", str(points_file), *([str(batch)] if batch else [])],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    output = completed.stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.M))

    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
        return round(float(number) * _UNITS[unit], 2)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    requests, received = map(int, re.search(r"^bench: requests (\d+) bytes (\d+)$", output, re.M).groups())
    return {
        "rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), 1),
        "p50_ms": ms(latency["50"]),
        "p99_ms": ms(latency["99"]),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        # Everything received over the whole run (status line and headers included) per response: wrk's exact
        # totals, printed by wrk.lua, not its rounded Transfer/sec.
        "response_bytes": round(received / requests) if requests else 0,
    }
