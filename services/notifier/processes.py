"""Delivery in processes of its own, for more than one core (``delivery_processes``).

One Python process sends about 1,500 messages/s to a local gateway on this machine before
its event loop is busy all the time (bench/README.md). With ``delivery_processes`` set, the
service's own process keeps consuming commands and publishing status events, and that many
processes deliver. Each claims from the same PostgreSQL queue the way a replica does
(``SKIP LOCKED`` claims, budget locks), so correctness does not depend on how many there are.

The service's process supervises them: one that dies is started again with backoff (its
claimed messages come back when their lease runs out), and at shutdown each is told to stop,
finishes its sends and writes their results. Every second each sends a snapshot of its
metrics, which ``/metrics`` shows merged with the service's own; a process that ended leaves
its totals behind, so counters never go back.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import threading
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection

import uvloop
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from followup.clock import SystemClock
from followup.db import create_pool
from followup.listen import Listener, table_channel
from followup.logs import configure_logging
from followup.loops import supervise, wait_for_any
from followup.metrics import RuntimeMetrics, merge_families, totals
from followup.service_app import tune_garbage_collector
from services.notifier.delivery import deliver, notifier_service
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierPolicy, NotifierSettings

log = logging.getLogger(__name__)

_REPORT_INTERVAL_S = 1.0


class DeliveryProcessEnded(Exception):
    """A delivery process ended without being told to: ``supervise`` starts another."""


@dataclass(frozen=True)
class _Job:
    """What a delivery process is started with (pickled to it)."""

    schema: str
    settings: NotifierSettings
    policy: NotifierPolicy
    stop_reader: Connection
    """A word or an EOF from the service's process: stop."""
    metrics_writer: Connection
    """Snapshots of the process's metrics, to the service's process."""


def _process_main(job: _Job) -> None:
    """A delivery process (spawned, so nothing of the parent's event loop comes along)."""
    # Ctrl-C reaches the whole process group; the service's process says when to stop, after
    # the consumers, so that sends under way are finished and recorded.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(job.schema, level=job.settings.log_level, fmt=job.settings.log_format)
    uvloop.run(_deliver(job))


async def _deliver(job: _Job) -> None:
    schema, settings, policy = job.schema, job.settings, job.policy
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_stop() -> None:
        # A word from the service's process, or its end (EOF): stop either way.
        with contextlib.suppress(EOFError):
            job.stop_reader.recv()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_stop, name="wait-for-stop", daemon=True).start()
    registry = CollectorRegistry()
    runtime_metrics = RuntimeMetrics(registry)
    metrics = NotifierMetrics(registry)
    _, dsn = settings.require_connections()
    pool = await create_pool(
        dsn,
        schema,
        size=settings.database_pool_size,
        connect_timeout_s=settings.database_connect_timeout_s,
    )
    clock = SystemClock()
    service = notifier_service(settings, policy, clock=clock, metrics=metrics, pool=lambda: pool)
    # After the templates are compiled, so that they too are frozen out of collection.
    tune_garbage_collector()
    listener = Listener(
        dsn, f"{schema}-delivery-listen", {table_channel(schema, "deliveries"): service.wake}
    )
    await listener.open()
    delivering = partial(
        deliver, settings=settings, policy=policy, service=service, metrics=metrics, clock=clock
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(listener.keep_listening(stop))
            tasks.create_task(_report(registry, job.metrics_writer, stop))
            tasks.create_task(supervise("deliveries", delivering, stop, runtime_metrics))
    finally:
        await listener.close()
        await pool.close()
        with contextlib.suppress(OSError):  # the service's process may be gone
            job.metrics_writer.send(list(registry.collect()))  # the final totals


async def _report(
    registry: CollectorRegistry, metrics_writer: Connection, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            metrics_writer.send(list(registry.collect()))
        except OSError:
            # The service's process is gone: stop the way its EOF would, letting the sends
            # under way finish instead of failing the task group around them.
            stop.set()
            return
        await wait_for_any(stop, _REPORT_INTERVAL_S)


class DeliveryProcesses:
    """The delivery processes of one notifier, supervised from its own process."""

    def __init__(
        self,
        schema: str,
        settings: NotifierSettings,
        policy: NotifierPolicy,
        metrics: RuntimeMetrics,
    ) -> None:
        self._schema = schema
        self._settings = settings
        self._policy = policy
        self._metrics = metrics
        # Spawned, not forked: a fork would copy the running event loop, the broker client
        # and the pool's sockets.
        self._context = multiprocessing.get_context("spawn")
        self._latest: dict[int, list[Metric]] = {}
        self._ended: list[Metric] = []

    def collect(self) -> list[Metric]:
        """The processes' metrics: the latest snapshot of each running one, plus the totals
        of those that ended."""
        return merge_families([self._ended, *self._latest.values()])

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tasks:
            for index in range(self._policy.delivery_processes):
                tasks.create_task(
                    supervise(
                        "delivery_process", partial(self._run_once, index), stop, self._metrics
                    )
                )

    async def _run_once(self, index: int, stop: asyncio.Event) -> None:
        stop_reader, stop_writer = self._context.Pipe(duplex=False)
        metrics_reader, metrics_writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_process_main,
            args=(_Job(self._schema, self._settings, self._policy, stop_reader, metrics_writer),),
            name=f"{self._schema}-delivery-{index}",
            daemon=True,
        )
        process.start()
        # The child holds its own ends now; closing ours lets each side see the other's EOF.
        stop_reader.close()
        metrics_writer.close()
        receiving = asyncio.ensure_future(asyncio.to_thread(self._receive, index, metrics_reader))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                with contextlib.suppress(OSError):  # it ended just now
                    stop_writer.send(None)
                # Sends under way finish within the request timeout; their results follow.
                grace = self._policy.request_timeout.total_seconds()
                done, _ = await asyncio.wait({receiving}, timeout=grace)
                if not done:
                    log.warning("delivery process %d did not stop in %.0fs", index, grace)
                    process.terminate()
                    await receiving
            await asyncio.to_thread(process.join)
        finally:
            stopping.cancel()
            stop_writer.close()
            if receiving.done():
                metrics_reader.close()
            else:
                # Cancelled while it runs (the service is stopping and out of patience): the
                # reading thread ends at the EOF, and only then may its connection close.
                process.terminate()
                receiving.add_done_callback(lambda _: metrics_reader.close())
            # What it counted stays counted.
            self._ended = merge_families([self._ended, totals(self._latest.pop(index, []))])
        if not stop.is_set():
            raise DeliveryProcessEnded(
                f"delivery process {index} ended (exit code {process.exitcode})"
            )

    def _receive(self, index: int, metrics_reader: Connection) -> None:
        """In a thread: the process's snapshots until it ends."""
        while True:
            try:
                self._latest[index] = metrics_reader.recv()
            except (EOFError, OSError):
                return
