"""The README and docker-compose.yml name exactly the variables the services read."""

import re
from pathlib import Path

from followup.services import SERVICES

ROOT = Path(__file__).resolve().parents[3]


def variables_read() -> set[str]:
    return {
        name.upper() for spec in SERVICES.values() for name in spec.settings_class().model_fields
    }


def test_every_variable_is_documented_in_the_readme() -> None:
    # The README's table, or a service's own README for the variables only it reads.
    readmes = [ROOT / "README.md", *sorted((ROOT / "services").glob("*/README.md"))]
    documented = {
        name
        for readme in readmes
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", readme.read_text(encoding="utf-8"))
    }
    assert variables_read() - documented == set()


def test_docker_compose_sets_only_variables_the_services_read() -> None:
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    environment = set(re.findall(r"^\s{4,6}([A-Z][A-Z0-9_]+):", compose, re.MULTILINE))
    kafka_and_postgres_images = {n for n in environment if n.startswith(("KAFKA_", "POSTGRES_"))}
    ours = (environment - kafka_and_postgres_images) | {
        n for n in kafka_and_postgres_images if n.lower() in {f.lower() for f in variables_read()}
    }
    assert ours <= variables_read()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "NOTIFIER_WEBHOOK_SECRET"} <= environment
