"""What the service benchmarks share: a service as its own process, started the way operators
run it (``followup run``: uvicorn on uvloop), its progress, and its resident memory."""

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.environment import BenchStack
from followup.kafka import committed_offsets_reader, consumer_group
from followup.stack.embedded import free_port


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@asynccontextmanager
async def service_process(
    stack: BenchStack, service: str, policy: Path | None = None, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``followup run <service>`` against the bench stack, ready when this yields."""
    port = free_port()
    environment = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        "KAFKA_TOPIC_PREFIX": stack.prefix,
        "KAFKA_IDEMPOTENT_PRODUCER": "false",
        "DATABASE_URL": stack.dsn,
        "LOG_LEVEL": "WARNING",
        **({"FOLLOWUP_POLICY_FILE": str(policy)} if policy else {}),
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "followup", "run", service, "--port", str(port), env=environment
    )
    try:
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient() as client:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"{service} exited with {process.returncode}")
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} not ready within 90 s")
                await asyncio.sleep(0.2)
        yield process
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def wait_until(probe: Callable[[], Awaitable[bool]], interval_s: float) -> None:
    """Poll another process's progress (nothing to await but its effects)."""
    while not await probe():  # noqa: ASYNC110 - the progress is another process's
        await asyncio.sleep(interval_s)


@dataclass(frozen=True)
class Consumed:
    events: int
    """Counted from the first committed batch: start-up and the group join are left out."""
    seconds: float
    cpu_s: float
    """The service process's CPU over the same time."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6


async def consume_backlog(
    stack: BenchStack, process: asyncio.subprocess.Process, service: str, topic: str, total: int
) -> Consumed:
    """Time a running service through a backlog of ``total`` records on ``topic``, from its
    first committed batch to its last. Progress is read from the group's committed offsets
    (committed right after each batch's transactions), which costs the broker a little and
    the database nothing: counting rows of a growing table would load the PostgreSQL the
    service is being measured against. One connection for all the reads, so the benchmark's
    own polling takes little of the CPU the service is measured on."""
    topic = stack.prefix + topic
    group = consumer_group(service, topic)
    async with committed_offsets_reader(stack.bootstrap, group, topic) as committed:
        first = 0
        while not first:
            await asyncio.sleep(0.05)
            first = await committed()
        started, cpu_started = time.perf_counter(), cpu_seconds(process.pid)
        done = first
        while done < total:
            await asyncio.sleep(0.1)
            done = await committed()
        return Consumed(
            total - first, time.perf_counter() - started, cpu_seconds(process.pid) - cpu_started
        )
