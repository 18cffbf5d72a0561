"""``followup up``: the whole stack on one machine, each service in its own process."""

import asyncio
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from contracts.topics import all_topic_names
from followup.db import migrate_dsn
from followup.kafka import TopicNames, create_topics
from followup.services import SERVICES
from followup.settings import RuntimeSettings
from followup.stack.embedded import EmbeddedKafka, EmbeddedPostgres, free_port

log = logging.getLogger(__name__)

DEMO_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "demo.toml"
_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 20.0


@dataclass
class StackOptions:
    partitions: int
    demo: bool
    base_port: int
    policy_file: Path | None
    verbose: bool
    demo_minute_s: float = 15.0
    demo_rounds: int = 3
    extra_env: dict[str, str] = field(default_factory=dict)


class LocalStack:
    def __init__(self, settings: RuntimeSettings, options: StackOptions) -> None:
        self._settings = settings
        self._options = options
        self._kafka: EmbeddedKafka | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def run(self) -> int:
        stop = _StopSignal()
        try:
            env = self._prepare()
            self._start_services(env)
            if self._options.demo:
                self._spawn(
                    "simulator",
                    [
                        "simulate",
                        "--minute",
                        str(self._options.demo_minute_s),
                        "--rounds",
                        str(self._options.demo_rounds),
                    ],
                    env,
                )
            print("stack is up; Ctrl-C stops everything", flush=True)  # noqa: T201
            return self._wait(stop)
        finally:
            self._shutdown()

    def _prepare(self) -> dict[str, str]:
        env = dict(os.environ, **self._options.extra_env)
        bootstrap = self._settings.kafka_bootstrap_servers
        if not bootstrap:
            self._kafka = EmbeddedKafka()
            bootstrap = self._kafka.start()
            # The embedded broker refuses the idempotent producer (architecture.md).
            env["KAFKA_IDEMPOTENT_PRODUCER"] = "false"
            print(f"embedded Kafka-compatible broker (Tansu) on {bootstrap}", flush=True)  # noqa: T201
        dsn = self._settings.database_url
        if not dsn:
            self._postgres = EmbeddedPostgres()
            dsn = self._postgres.start()
            print("embedded PostgreSQL started", flush=True)  # noqa: T201
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        env["DATABASE_URL"] = dsn
        topics = TopicNames(self._settings.kafka_topic_prefix)
        asyncio.run(self._create_and_migrate(bootstrap, dsn, topics))
        policy = self._options.policy_file or (DEMO_POLICY if self._options.demo else None)
        if policy is not None:
            env["FOLLOWUP_POLICY_FILE"] = str(policy)
        env.setdefault("LOG_FORMAT", "text")
        if self._options.demo and not self._options.verbose:
            env.setdefault("LOG_LEVEL", "WARNING")
        if self._options.demo and "NOTIFIER_WEBHOOK_URL" not in env:
            port = free_port()
            secret = secrets.token_hex(16)
            env["NOTIFIER_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/messages"
            env["NOTIFIER_WEBHOOK_SECRET"] = secret
            self._spawn("receiver", ["receiver", "--port", str(port), "--secret", secret], env)
        return env

    async def _create_and_migrate(self, bootstrap: str, dsn: str, topics: TopicNames) -> None:
        await create_topics(
            bootstrap, [topics(t) for t in all_topic_names()], partitions=self._options.partitions
        )
        for spec in SERVICES.values():
            await migrate_dsn(dsn, spec.name, spec.migrations())

    def _start_services(self, env: dict[str, str]) -> None:
        ports = {}
        for offset, name in enumerate(SERVICES, start=1):
            base = self._options.base_port
            ports[name] = base + offset if base else free_port()
            self._spawn(name, ["run", name, "--port", str(ports[name])], env)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        for name, port in ports.items():
            _wait_ready(name, port, deadline, self._children)
            print(f"{name:<10} ready: http://127.0.0.1:{port}/metrics", flush=True)  # noqa: T201

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        # Own session: Ctrl-C reaches only this process, which then stops the children in
        # order (services first, broker and database last).
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "followup", *args], env=env, start_new_session=True
        )
        self._children.append((name, process))

    def _wait(self, stop: "_StopSignal") -> int:
        while not stop.requested:
            for name, process in self._children:
                code = process.poll()
                if code is not None and name != "simulator":
                    print(f"{name} exited with code {code}; stopping the stack", flush=True)  # noqa: T201
                    return 1
            time.sleep(0.2)
        return 0

    def _shutdown(self) -> None:
        for _, process in self._children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for name, process in self._children:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in time; killing it", flush=True)  # noqa: T201
                process.kill()
                process.wait()
        self._children = []
        if self._kafka is not None:
            self._kafka.stop()
        if self._postgres is not None:
            self._postgres.stop()
        print("stack stopped", flush=True)  # noqa: T201


class _StopSignal:
    """Ctrl-C and SIGTERM ask the stack to stop; children get SIGTERM and a grace period."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, *_: object) -> None:
        self.requested = True


def _wait_ready(
    name: str, port: int, deadline: float, children: list[tuple[str, subprocess.Popen[bytes]]]
) -> None:
    url = f"http://127.0.0.1:{port}/readyz"
    while time.monotonic() < deadline:
        for child_name, process in children:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{child_name} exited with code {process.returncode} during start-up"
                )
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} was not ready within {_READY_TIMEOUT_S:.0f}s ({url})")
