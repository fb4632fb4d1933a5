"""The fault suite: one private stack per run (faults/stack.py), broken by each test in turn, and a table of the
recovery times measured, printed at the end and written to .run/faults/recovery.md (and into docs/faults.md with
FAULTS_WRITE_DOCS=1)."""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from faults import traffic
from faults.stack import ROOT, Stack, wait_until

WORKDIR = ROOT / ".run" / "faults"
DOCS = ROOT / "docs" / "faults.md"
# Settings of the stack under test. The sweep runs every 10 s and resends lost index work after 20 s (instead of
# 60 s and 120 s) so that a run takes minutes: recoveries that wait for the sweep take up to about 3 minutes with
# the defaults (docs/faults.md). Writes are not rate limited: the suite writes more than a user may.
STACK_SETTINGS = {
    "HEXINDEX_SWEEP_SECONDS": "10",
    "HEXINDEX_REENQUEUE_AFTER": "20",
    "WRITE_THROTTLE_RATE": "100000/minute",
}
RECOVERY_TIMEOUT = 180

measured: list[dict] = []
query_points: list[int] = []


@pytest.fixture(scope="session")
def stack():
    shutil.rmtree(WORKDIR, ignore_errors=True)
    built = Stack(
        WORKDIR,
        pg_port=int(os.environ.get("FAULTS_PG_PORT", "54339")),
        redis_port=int(os.environ.get("FAULTS_REDIS_PORT", "63799")),
        web_port=int(os.environ.get("FAULTS_WEB_PORT", "8099")),
        env=STACK_SETTINGS,
    )
    try:
        built.start()
        yield built
    finally:
        built.stop()


@pytest.fixture(scope="session")
def answers(stack) -> dict:
    """The query points and their exact answers, before anything is broken."""
    found = traffic.exact_answers(stack)
    assert any(found.values()) and not all(found.values()), "the query points should include hits and misses"
    query_points.append(len(found))
    return found


@pytest.fixture(scope="session")
def provider_id(stack) -> int:
    """An approved provider of the demo user (whose token the stack holds): the suite writes its areas."""
    providers = stack.write("GET", "/api/v1/providers/?approved=true").json()["results"]
    return providers[0]["id"]


@pytest.fixture(autouse=True)
def healthy(stack):
    """Each test starts from a whole stack: every process up, the index live and caught up."""
    wait_until(lambda: all(process.alive() for process in stack.processes), 5, "every process running")
    wait_until(lambda: caught_up(stack, []), RECOVERY_TIMEOUT, "the stack healthy before the test")


def caught_up(stack: Stack, acknowledged: list[dict]) -> bool:
    """/health/ is ok with the index live and nothing unindexed, and every acknowledged write is `ready` and found
    by a lookup at its place. Fails at once if a process of the stack has exited: nothing would restart it."""
    exited = [process.name for process in stack.processes if not process.alive()]
    assert not exited, f"exited: {exited} (logs in {WORKDIR})"
    response = stack.get("/health/", timeout=5)
    traffic.judge(response)
    health = response.json()
    if response.status_code != 200 or health["status"] != "ok" or health["index"]["unindexed_areas"]:
        return False
    for area in acknowledged:
        response = stack.write("GET", f"/api/v1/service-areas/{area['id']}/")
        assert response.status_code == 200, f"acknowledged area {area['id']} is gone: {response.status_code}"
        if response.json()["properties"]["index"]["status"] != "ready":
            return False
        if traffic.lookup(stack, area["lat"], area["lng"], [area["id"]])[0] != "exact":
            return False
    return True


def record(failure: str, users_see: str, recovery: str) -> None:
    measured.append({"failure": failure, "users_see": users_see, "recovery": recovery})


def pytest_terminal_summary(terminalreporter):
    if not measured:
        return
    table = "\n".join(
        ["| Failure | What users see | Recovery measured |", "| --- | --- | --- |"]
        + [f"| {row['failure']} | {row['users_see']} | {row['recovery']} |" for row in measured]
    )
    header = f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make faults`"
    header += f", lookups at {query_points[0]} points." if query_points else "."
    terminalreporter.write_sep("=", "what happens when (measured recovery times)")
    terminalreporter.write_line(table)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    (WORKDIR / "recovery.md").write_text(f"{header}\n\n{table}\n")
    if os.environ.get("FAULTS_WRITE_DOCS") == "1":
        text = DOCS.read_text()
        block = f"<!-- faults:start -->\n{header}\n\n{table}\n<!-- faults:end -->"
        DOCS.write_text(re.sub(r"<!-- faults:start -->.*?<!-- faults:end -->", lambda _: block, text, flags=re.S))
