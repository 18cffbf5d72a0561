"""The four services by name, for the CLI and the local stack."""

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream.asgi import AsgiFastStream

from followup.db import Connection, Migration, service_migrations
from followup.history import HistoryEntry


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str

    @property
    def factory(self) -> str:
        """The argument of ``faststream run --factory``."""
        return f"{self.module}.app:create_app"

    @property
    def directory(self) -> Path:
        return Path(importlib.import_module(self.module).__file__ or "").parent

    def migrations(self) -> list[Migration]:
        return service_migrations(self.name, self.directory)

    def create_app(self, **kwargs: Any) -> AsgiFastStream:
        app: AsgiFastStream = importlib.import_module(f"{self.module}.app").create_app(**kwargs)
        return app

    async def history(
        self, conn: Connection, *, order_id: str | None, customer_id: str | None
    ) -> list[HistoryEntry]:
        """This service's history entries, or none if it keeps no history."""
        try:
            module = importlib.import_module(f"{self.module}.history")
        except ModuleNotFoundError:
            return []
        entries: list[HistoryEntry] = await module.history(
            conn, order_id=order_id, customer_id=customer_id
        )
        return entries

    def settings_class(self) -> Any:
        return getattr(importlib.import_module(f"{self.module}.settings"), f"{self.title}Settings")

    def policy_class(self) -> Any:
        return getattr(importlib.import_module(f"{self.module}.settings"), f"{self.title}Policy")

    @property
    def title(self) -> str:
        return self.name.capitalize()


SERVICES = {
    name: ServiceSpec(name, f"services.{name}")
    for name in ("reminder", "logistics", "aftersales", "notifier")
}
