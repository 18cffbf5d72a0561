"""The four services by name, for the CLI and the local stack."""

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream.asgi import AsgiFastStream

from followup.db import Migration, service_migrations


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
