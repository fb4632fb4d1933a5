"""Break the real stack and watch what users get: PostgreSQL stopped, Redis stopped, emptied and frozen, worker
processes killed mid-task. Every response meanwhile is judged (faults/traffic.py): an exact answer or a JSON 503
naming the dependency. After each fault the stack must recover by itself, the time it takes is measured, and
every write that was acknowledged must be there and indexed."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

from faults import traffic
from faults.conftest import RECOVERY_TIMEOUT, caught_up, record
from faults.stack import Stack, wait_until
from faults.traffic import Traffic

OUTAGE_SECONDS = 10
# Quiet this long (every query point answered exactly, writes acknowledged) before the stack counts as serving
# again: longer than a web process's Redis circuit breaker stays open (HEXINDEX_BREAKER_SECONDS, 5 s), so that no
# process still refusing writes goes unnoticed.
QUIET_SECONDS = 8

_WAITING_FOR_AREA_LOCK_SQL = """
SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND NOT l.granted AND l.classid = 0 AND l.objid = %s
"""


def recover(load: Traffic, since: float) -> float:
    """Seconds from `since` until the last refusal (a 503) of the traffic, once it has been quiet for a while: 0
    when nothing was refused after `since`."""

    def serving() -> bool:
        return (
            time.monotonic() - load.last_refusal >= QUIET_SECONDS
            and load.exact_since_refusal >= len(load.answers)
            and load.writes_since_refusal >= 2
        )

    wait_until(serving, RECOVERY_TIMEOUT, "lookups exact and writes acknowledged again, for a while")
    return max(load.last_refusal - since, 0.0)


def normal_after(serving: float, what: str) -> str:
    if serving == 0:
        return "no 503 after that"
    return f"lookups and writes normal {serving:.1f} s after {what}"


def catch_up(stack: Stack, acknowledged: list[dict], since: float) -> float:
    """Seconds from `since` until the index is live and caught up, these acknowledged writes included (while the
    traffic goes on: its own writes are checked afterwards, untimed)."""
    wait_until(lambda: caught_up(stack, acknowledged), RECOVERY_TIMEOUT, "the index caught up")
    return time.monotonic() - since


def new_area(stack: Stack, provider_id: int) -> dict:
    """A fresh area in the write region, indexed and live."""
    outcome, area = traffic.write_area(stack, provider_id)
    assert outcome == "201", outcome
    wait_until(lambda: caught_up(stack, [area]), 60, "the new area indexed")
    return area


class HeldBuild:
    """The worker's build of an area, held midway: the test holds the advisory lock the build takes before it
    writes the cell table (hexindex.build), so the worker process waits there, mid-task, until `release()`."""

    def __init__(self, stack: Stack, area: dict):
        self.stack, self.area = stack, area
        self.connection = stack.pg.connect()
        self.connection.autocommit = True
        self.connection.cursor().execute("SELECT pg_advisory_lock(%s)", [area["id"]])
        # Moved within the write region: the answers at the query points do not change.
        area["lng"] += traffic.WRITE_STEP / 2
        body = {"type": "Feature", "geometry": traffic.square(area["lng"], area["lat"])}
        response = stack.write("PATCH", f"/api/v1/service-areas/{area['id']}/", body)
        assert response.status_code == 200, response.text

    def worker_process(self) -> int | None:
        """The pool process whose build waits for the lock now (a killed one's query may still wait: skipped)."""
        with self.connection.cursor() as cursor:
            cursor.execute(_WAITING_FOR_AREA_LOCK_SQL, [self.area["id"]])
            ports = [row[0] for row in cursor.fetchall()]
        for port in ports:
            if (pid := self.stack.worker_process_on_port(port)) is not None:
                return pid
        return None

    def release(self) -> None:
        if not self.connection.closed:
            self.connection.cursor().execute("SELECT pg_advisory_unlock_all()")
            self.connection.close()


@contextmanager
def build_held_midway(stack: Stack, area: dict):
    held = HeldBuild(stack, area)
    try:
        wait_until(held.worker_process, 30, "the worker's build waiting midway")
        yield held
    finally:
        held.release()


def health_during_outage(stack: Stack, service: str) -> None:
    response = stack.get("/health/", timeout=5)
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    assert (response.status_code, response.json()[service]) == (503, "unavailable"), response.text


def test_postgres_stopped_and_restarted(stack, answers, provider_id):
    pids = stack.pids()
    with Traffic(stack, answers, provider_id) as load:
        time.sleep(2)
        stack.pg.stop("fast")
        time.sleep(OUTAGE_SECONDS)
        health_during_outage(stack, "postgres")
        stack.pg.start()
        back = time.monotonic()
        indexed = catch_up(stack, list(load.acknowledged), back)
        serving = recover(load, back)
    assert load.outcomes["write 503 postgres"] > 0, load.outcomes  # the outage was seen, as a JSON 503
    catch_up(stack, load.acknowledged, back)
    assert stack.pids() == pids, "a process was restarted"
    record(
        f"PostgreSQL stopped for {OUTAGE_SECONDS} s, then started",
        load.summary(),
        f"{normal_after(serving, 'PostgreSQL is back')}; index caught up after {indexed:.1f} s",
    )


def test_redis_stopped_while_a_build_runs_and_restarted_empty(stack, answers, provider_id):
    """Stopping Redis while the worker was mid-task used to crash the worker (kombu, see worker/broker.py)."""
    area = new_area(stack, provider_id)
    pids = stack.pids()
    with Traffic(stack, answers, provider_id) as load:
        with build_held_midway(stack, area) as held:
            stack.redis.stop()
            held.release()  # the build goes on, without Redis
            time.sleep(OUTAGE_SECONDS)
            health_during_outage(stack, "redis")
        stack.redis.start()
        back = time.monotonic()
        indexed = catch_up(stack, [*load.acknowledged, area], back)
        serving = recover(load, back)
    assert load.outcomes["write 503 redis"] > 0, load.outcomes
    catch_up(stack, load.acknowledged, back)
    assert stack.pids() == pids, "a process was restarted"
    record(
        f"Redis stopped for {OUTAGE_SECONDS} s while a build runs, then started empty",
        load.summary(),
        f"{normal_after(serving, 'Redis is back')}; index rebuilt and caught up after {indexed:.1f} s",
    )


def test_redis_emptied_with_builds_queued(stack, answers, provider_id):
    first, second = new_area(stack, provider_id), new_area(stack, provider_id)
    pids = stack.pids()
    with Traffic(stack, answers, provider_id) as load:
        # Both pool processes busy: the builds of the writes acknowledged meanwhile wait in the queue.
        with build_held_midway(stack, first), build_held_midway(stack, second):
            wait_until(lambda: stack.redis.client().llen("index") >= 2, 30, "builds waiting in the queue")
            stack.redis.client().flushall()
            emptied = time.monotonic()
        indexed = catch_up(stack, [*load.acknowledged, first, second], emptied)
        serving = recover(load, emptied)
    catch_up(stack, load.acknowledged, emptied)
    assert stack.pids() == pids, "a process was restarted"
    record(
        "Redis emptied (FLUSHALL) with builds queued: index, queue and pending registrations gone",
        load.summary(),
        f"{normal_after(serving, 'the flush')}; the queued builds are lost and sent again by the sweep: index "
        f"rebuilt and caught up after {indexed:.1f} s (with the default sweep timings up to about 3 minutes)",
    )


def test_redis_unresponsive(stack, answers, provider_id):
    pids = stack.pids()
    with Traffic(stack, answers, provider_id) as load:
        time.sleep(2)
        stack.redis.freeze()
        try:
            time.sleep(OUTAGE_SECONDS)
            health_during_outage(stack, "redis")
        finally:
            stack.redis.resume()
        back = time.monotonic()
        indexed = catch_up(stack, list(load.acknowledged), back)
        serving = recover(load, back)
    assert load.slowest_lookup < 2.0, f"a lookup took {load.slowest_lookup:.2f} s while Redis did not answer"
    catch_up(stack, load.acknowledged, back)
    assert stack.pids() == pids, "a process was restarted"
    record(
        f"Redis frozen (SIGSTOP) for {OUTAGE_SECONDS} s",
        load.summary(),
        f"{normal_after(serving, 'Redis answers again')}; index caught up after {indexed:.1f} s",
    )


def test_worker_process_killed_mid_task(stack, answers, provider_id):
    area = new_area(stack, provider_id)
    worker = stack.worker.pid
    with Traffic(stack, answers, provider_id) as load, build_held_midway(stack, area) as held:
        os.kill(held.worker_process(), signal.SIGKILL)
        killed = time.monotonic()
        held.release()
        indexed = catch_up(stack, [area], killed)
    catch_up(stack, load.acknowledged, killed)
    assert (stack.worker.alive(), stack.worker.pid) == (True, worker)
    record(
        "A worker pool process killed (SIGKILL) mid-task",
        load.summary(),
        f"the task is delivered again at once: area indexed {indexed:.1f} s after the kill",
    )


def test_whole_worker_killed_mid_task_and_started_again(stack, answers, provider_id):
    area = new_area(stack, provider_id)
    with Traffic(stack, answers, provider_id) as load, build_held_midway(stack, area) as held:
        for pid in [*stack.worker.children(), stack.worker.pid]:  # as when its container dies
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        held.release()
        stack.worker.popen.wait()
        time.sleep(1)  # make run's supervisor waits 1 s before starting it again
        stack.worker.start()
        indexed = catch_up(stack, [area], killed)
    catch_up(stack, load.acknowledged, killed)
    record(
        "The whole worker killed (SIGKILL) mid-task, started again after 1 s",
        load.summary(),
        f"the sweep sends the lost build again: area indexed {indexed:.1f} s after the kill "
        "(with the default sweep timings up to about 3 minutes)",
    )


def test_a_task_that_kills_its_worker_every_time_is_given_up(stack, answers, provider_id):
    area = new_area(stack, provider_id)
    worker = stack.worker.pid
    with Traffic(stack, answers, provider_id) as load, build_held_midway(stack, area) as held:
        started = time.monotonic()
        for _ in range(3):
            os.kill(wait_until(held.worker_process, 30, "the build delivered again"), signal.SIGKILL)

        def index_state() -> dict:
            return stack.write("GET", f"/api/v1/service-areas/{area['id']}/").json()["properties"]["index"]

        wait_until(lambda: index_state()["status"] == "failed", 60, "the area's index marked failed")
        given_up = time.monotonic() - started
        assert index_state()["error"] == "killed its worker 3 times"
        # Still found: an area whose index failed is checked in PostGIS.
        assert traffic.lookup(stack, area["lat"], area["lng"], [area["id"]])[0] == "exact"
    assert (stack.worker.alive(), stack.worker.pid) == (True, worker)
    # Its next change is indexed as usual.
    area["lng"] -= traffic.WRITE_STEP / 2
    body = {"type": "Feature", "geometry": traffic.square(area["lng"], area["lat"])}
    assert stack.write("PATCH", f"/api/v1/service-areas/{area['id']}/", body).status_code == 200
    catch_up(stack, [*load.acknowledged, area], time.monotonic())
    record(
        "A task that kills its worker process every time",
        f"{load.summary()}; the area's index shows `failed`: killed its worker 3 times",
        f"given up after the 3rd death, {given_up:.1f} s after the first (not requeued forever)",
    )
