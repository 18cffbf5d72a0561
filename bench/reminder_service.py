"""What the reminder benchmarks share: the service as its own process (as operators run it)
and its resident memory."""

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from bench.environment import BenchStack
from followup.stack.embedded import free_port


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@asynccontextmanager
async def reminder_process(
    stack: BenchStack, policy: Path | None = None, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``followup run reminder`` against the bench stack, ready when this yields."""
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
        sys.executable, "-m", "followup", "run", "reminder", "--port", str(port), env=environment
    )
    try:
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient() as client:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"reminder exited with {process.returncode}")
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("reminder not ready within 90 s")
                await asyncio.sleep(0.2)
        yield process
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def wait_until(probe: Callable[[], Awaitable[bool]], interval_s: float) -> None:
    """Poll another process's progress (nothing to await but its effects)."""
    while not await probe():  # noqa: ASYNC110 - the progress is another process's
        await asyncio.sleep(interval_s)
