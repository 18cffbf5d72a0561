"""The services as separate processes, started the way an operator starts them."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from followup.demo.receiver import ReceiverServer, WebhookReceiver
from followup.stack.embedded import free_port
from tests.harness import Kafka, eventually

SECRET = "e2e-secret-0123456789abcdef"

# Tier 1 comes three seconds after the order; the others fall outside any test's runtime.
E2E_POLICY = """
[reminder]
late_grace = "30s"
[reminder.quiet_hours]
enabled = false  # tests run at any hour; quiet hours are covered by integration tests
[[reminder.tiers]]
after_created = "3s"
[[reminder.tiers]]
after_created = "6h"
[[reminder.tiers]]
before_deadline = "2h"

[notifier]
retry_base = "1s"
retry_max = "2s"

# These tests run on the wall clock: reminders are marketing messages, which the notifier
# holds back during the customer's night, so quiet hours are off here.
[notifier.quiet_hours]
start = "00:00"
end = "00:00"
"""


class ServiceProcess:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "followup", "run", self.name, "--port", str(self.port)],
            env=self._env,
        )
        async with httpx.AsyncClient() as client:

            async def ready() -> bool:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.process.returncode}")
                try:
                    response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                except httpx.HTTPError:
                    return False
                return response.status_code == 200

            await eventually(ready, timeout_s=60, what=f"{self.name} ready")

    def crash(self) -> None:
        """SIGKILL: no graceful shutdown, nothing flushed or committed on the way out."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 30)
        return self.process.returncode


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "followup.toml"
    path.write_text(E2E_POLICY)
    return path


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[WebhookReceiver, str]]:
    app = WebhookReceiver(SECRET)
    server = ReceiverServer(app)
    url = await server.start()
    yield app, url
    await server.stop()


@pytest.fixture
def stack_env(
    kafka: Kafka, database: str, policy_file: Path, receiver: tuple[WebhookReceiver, str]
) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "KAFKA_TOPIC_PREFIX": kafka.prefix,
        "KAFKA_IDEMPOTENT_PRODUCER": os.environ.get("KAFKA_IDEMPOTENT_PRODUCER", "false"),
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "DATABASE_URL": database,
        "FOLLOWUP_POLICY_FILE": str(policy_file),
        "NOTIFIER_WEBHOOK_URL": receiver[1],
        "NOTIFIER_WEBHOOK_SECRET": SECRET,
        "TIMER_POLL_INTERVAL_S": "0.2",
        "LOG_FORMAT": "text",
    }


@pytest.fixture
async def services(stack_env: dict[str, str]) -> AsyncIterator[dict[str, ServiceProcess]]:
    """The reminder and the notifier, each in its own process."""
    started = {name: ServiceProcess(name, stack_env) for name in ("reminder", "notifier")}
    await asyncio.gather(*(p.start() for p in started.values()))
    yield started
    for process in started.values():
        await process.stop()
