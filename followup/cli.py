"""The ``followup`` command: run services, the local stack, demo traffic, docs and checks."""

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from followup.settings import ConfigError, RuntimeSettings, load_policy, load_settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help=__doc__
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema commands.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topic commands.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration commands.")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
app.add_typer(config_app, name="config")
templates_app = typer.Typer(no_args_is_help=True, help="Message template commands.")
preferences_app = typer.Typer(
    no_args_is_help=True, help="A customer's opt-outs, per channel and per class of message."
)
app.add_typer(templates_app, name="templates")
app.add_typer(preferences_app, name="preferences")

ASYNCAPI_FILE = Path("docs/asyncapi.json")
ServiceName = Annotated[str, typer.Argument(help="reminder, logistics, aftersales or notifier")]


def _service(name: str) -> Any:
    from followup.services import SERVICES

    if name not in SERVICES:
        raise ConfigError(f"unknown service {name!r}: choose one of {', '.join(SERVICES)}")
    return SERVICES[name]


@app.command()
def run(
    service: ServiceName,
    host: Annotated[str | None, typer.Option(help="Listen address (default HTTP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default HTTP_PORT)")] = None,
) -> None:
    """Run one service: its Kafka consumers, timers, outbox and /metrics, /healthz, /readyz."""
    import uvicorn

    from followup.logs import configure_logging

    spec = _service(service)
    settings = load_settings(spec.settings_class())
    configure_logging(service, level=settings.log_level, fmt=settings.log_format)
    asgi = spec.create_app(settings=settings)
    uvicorn.run(
        asgi,
        host=host or settings.http_host,
        port=port if port is not None else settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


@app.command()
def up(
    demo: Annotated[
        bool, typer.Option(help="Publish demo traffic and print every message")
    ] = False,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions per topic")] = 3,
    base_port: Annotated[
        int, typer.Option(help="Services listen on base+1 .. base+4; 0 picks free ports")
    ] = 8000,
    policy: Annotated[
        Path | None, typer.Option(help="Policy file (default: demo policy with --demo)")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show service logs in demo mode")] = False,
    minute: Annotated[float, typer.Option(help="Demo: real seconds per story minute")] = 15.0,
    rounds: Annotated[int, typer.Option(min=1, help="Demo: rounds of stories")] = 3,
) -> None:
    """Start the whole stack. Without KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL it starts an
    embedded broker and PostgreSQL; Ctrl-C stops everything."""
    from followup.stack.local import LocalStack, StackOptions

    settings = load_settings(RuntimeSettings)
    options = StackOptions(
        partitions=partitions,
        demo=demo,
        base_port=base_port,
        policy_file=policy,
        verbose=verbose,
        demo_minute_s=minute,
        demo_rounds=rounds,
    )
    raise typer.Exit(LocalStack(settings, options).run())


@app.command()
def simulate(
    minute: Annotated[float, typer.Option(help="Real seconds per story minute")] = 15.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of stories")] = 3,
) -> None:
    """Publish demo shop events (orders, payments, shipments, after-sales) to the broker."""
    from followup.demo.simulator import simulate as run_simulation
    from followup.kafka import TopicNames

    settings = load_settings(RuntimeSettings)
    if not settings.kafka_bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS not set: point it at the broker to publish to")
    count = asyncio.run(
        run_simulation(
            settings.kafka_bootstrap_servers,
            TopicNames(settings.kafka_topic_prefix),
            minute_s=minute,
            rounds=rounds,
        )
    )
    print(f"demo traffic done: {count} shop events published")


@app.command()
def receiver(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8099,
    secret: Annotated[
        str, typer.Option(envvar="NOTIFIER_WEBHOOK_SECRET", help="Shared secret")
    ] = "",
) -> None:
    """A local stand-in for the shop's gateway: prints each webhook message readably."""
    import uvicorn

    from followup.demo.receiver import ReceivedMessage, WebhookReceiver, describe

    def show(message: ReceivedMessage) -> None:
        print(describe(message), flush=True)

    print(f"webhook receiver on http://127.0.0.1:{port}/messages", flush=True)
    uvicorn.run(
        WebhookReceiver(secret or None, on_message=show),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )


@db_app.command("migrate")
def db_migrate(
    service: Annotated[list[str] | None, typer.Argument(help="Services (default: all)")] = None,
) -> None:
    """Apply pending migrations (idempotent; safe while services run)."""
    from followup.db import migrate_dsn
    from followup.services import SERVICES

    settings = load_settings(RuntimeSettings)
    if not settings.database_url:
        raise ConfigError("DATABASE_URL not set: point it at the PostgreSQL to migrate")
    for name in service or list(SERVICES):
        spec = _service(name)
        applied = asyncio.run(migrate_dsn(settings.database_url, spec.name, spec.migrations()))
        print(f"{name}: {', '.join(applied) if applied else 'up to date'}")


@app.command()
def history(
    order: Annotated[str | None, typer.Option("--order", help="Order id")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="Customer id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """What every service decided and sent for an order or a customer, in time order."""
    from followup.services import SERVICES

    if (order is None) == (customer is None):
        raise ConfigError("give exactly one of --order ORDER_ID or --customer CUSTOMER_ID")
    settings = load_settings(RuntimeSettings)
    if not settings.database_url:
        raise ConfigError("DATABASE_URL not set: point it at the services' PostgreSQL")
    dsn = settings.database_url

    async def collect() -> list[Any]:
        import asyncpg

        entries = []
        for spec in SERVICES.values():
            conn = await asyncpg.connect(dsn, server_settings={"search_path": spec.name})
            try:
                if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                    entries += await spec.history(conn, order_id=order, customer_id=customer)
            finally:
                await conn.close()
        return sorted(entries, key=lambda e: e.at)

    entries = asyncio.run(collect())
    if not entries:
        print(f"no history for {'order ' + order if order else 'customer ' + str(customer)}")
    for entry in entries:
        if as_json:
            print(json.dumps({**vars(entry), "at": entry.at.isoformat()}, ensure_ascii=False))
        else:
            print(
                f"{entry.at:%Y-%m-%d %H:%M:%S%z}  {entry.service:<10} {entry.order_id or '':<10} "
                f"{entry.what}" + (f"  ({entry.detail})" if entry.detail else "")
            )


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic (and dead-letter topic) that is missing, with KAFKA_TOPIC_PARTITIONS."""
    from contracts.topics import all_topic_names
    from followup.kafka import TopicNames, create_topics

    settings = load_settings(RuntimeSettings)
    if not settings.kafka_bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS not set: point it at the broker")
    topics = TopicNames(settings.kafka_topic_prefix)
    names = [topics(t) for t in all_topic_names()]
    asyncio.run(
        create_topics(
            settings.kafka_bootstrap_servers, names, partitions=settings.kafka_topic_partitions
        )
    )
    print(f"topics ready: {', '.join(names)}")


@config_app.command("check")
def config_check() -> None:
    """Validate the environment and every section of the policy file."""
    from followup.services import SERVICES

    for spec in SERVICES.values():
        settings = load_settings(spec.settings_class())
        load_policy(settings.policy_path(), spec.name, spec.policy_class())
    path = load_settings(RuntimeSettings).policy_path()
    print(f"configuration ok (policy: {path or 'built-in defaults'})")


@templates_app.command("check")
def templates_check(
    directory: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Template directories, highest priority first (default: NOTIFIER_TEMPLATES_DIR "
            "if set, then the built-in templates)"
        ),
    ] = None,
    show: Annotated[bool, typer.Option(help="Print every rendered sample")] = False,
) -> None:
    """Review every template against domain-notes.md §4: banned phrases, an opening apology
    for delay, exception and stalled-case messages, a concrete next step or time, the SMS
    length budget, and one template per required locale. Exit code 1 on any problem."""
    from services.notifier.policy import sms_length
    from services.notifier.settings import NotifierPolicy, NotifierSettings
    from services.notifier.template_check import check_templates
    from services.notifier.templates import BUILTIN_TEMPLATES

    settings = load_settings(NotifierSettings)
    rules = load_policy(settings.policy_path(), "notifier", NotifierPolicy).templates
    directories = directory or [
        d for d in (settings.notifier_templates_dir, BUILTIN_TEMPLATES) if d is not None
    ]
    report = check_templates(directories, rules)
    if show:
        for template, rendered in report.checked:
            if rendered is None:
                continue
            length = sms_length(rendered.sms)
            print(f"── {template.locale}/{template.name}  ({template.path})")
            print(f"   subject: {rendered.subject}")
            print("\n".join(f"   {line}" for line in rendered.text.splitlines()))
            print(f"   sms ({length.units} {length.encoding}, {length.segments} segment(s)):")
            print(f"   {rendered.sms}")
    for finding in report.findings:
        print(finding, file=sys.stderr)
    print(
        f"{len(report.checked)} templates checked in {', '.join(map(str, directories))}: "
        f"{len(report.findings) or 'no'} problem{'s' if len(report.findings) != 1 else ''}"
    )
    if report.findings:
        raise typer.Exit(1)


_CLASSES = ("marketing", "transactional")
_CHANNELS = ("webhook", "sms", "email")


def _notifier_connection_dsn() -> str:
    settings = load_settings(RuntimeSettings)
    dsn: str | None = settings.database_url
    if not dsn:
        raise ConfigError("DATABASE_URL not set: point it at the services' PostgreSQL")
    return dsn


async def _with_notifier_schema(dsn: str, work: Any) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn, server_settings={"search_path": "notifier"})
    try:
        if not await conn.fetchval("SELECT to_regclass('opt_outs') IS NOT NULL"):
            raise ConfigError(
                "the notifier's tables do not exist in this database yet: run "
                "`followup db migrate notifier` (or start the notifier once)"
            )
        return await work(conn)
    finally:
        await conn.close()


def _preference_change(
    customer: str, channel: str | None, message_class: str | None, *, out: bool
) -> None:
    from datetime import UTC, datetime

    from services.notifier import store

    if channel is not None and channel not in _CHANNELS:
        raise ConfigError(f"--channel must be one of {', '.join(_CHANNELS)} (given {channel!r})")
    if message_class is not None and message_class not in _CLASSES:
        raise ConfigError(f"--class must be one of {', '.join(_CLASSES)} (given {message_class!r})")
    change = store.OptOut(customer, channel or "*", message_class or "*", "cli", datetime.now(UTC))

    async def apply(conn: Any) -> None:
        async with conn.transaction():
            await store.set_opt_outs(conn, [(change, out)])

    asyncio.run(_with_notifier_schema(_notifier_connection_dsn(), apply))
    what = f"{message_class or 'all'} messages on {channel or 'every channel'}"
    print(f"customer {customer}: {'opted out of' if out else 'opted back in to'} {what}")


ChannelOption = Annotated[
    str | None, typer.Option("--channel", help="webhook, sms or email (default: every channel)")
]
ClassOption = Annotated[
    str | None,
    typer.Option("--class", help="marketing or transactional (default: every message)"),
]


@preferences_app.command("show")
def preferences_show(
    customer: Annotated[str, typer.Argument(help="Customer id")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """The customer's opt-outs, and when and where they were set."""
    from services.notifier import store

    async def read(conn: Any) -> list[Any]:
        return await store.opt_outs_of(conn, customer)

    opt_outs = asyncio.run(_with_notifier_schema(_notifier_connection_dsn(), read))
    if not opt_outs:
        print(f"customer {customer}: no opt-outs, every channel and class allowed")
    for o in opt_outs:
        if as_json:
            print(json.dumps({**vars(o), "at": o.at.isoformat()}, ensure_ascii=False))
        else:
            channel = "every channel" if o.channel == "*" else o.channel
            klass = "all messages" if o.message_class == "*" else f"{o.message_class} messages"
            print(
                f"customer {customer}: opted out of {klass} on {channel} "
                f"(since {o.at:%Y-%m-%d %H:%M:%S%z}, via {o.source})"
            )


@preferences_app.command("opt-out")
def preferences_opt_out(
    customer: Annotated[str, typer.Argument(help="Customer id")],
    channel: ChannelOption = None,
    message_class: ClassOption = None,
) -> None:
    """Stop messages to a customer: on one channel, of one class, or both."""
    _preference_change(customer, channel, message_class, out=True)


@preferences_app.command("opt-in")
def preferences_opt_in(
    customer: Annotated[str, typer.Argument(help="Customer id")],
    channel: ChannelOption = None,
    message_class: ClassOption = None,
) -> None:
    """Remove exactly this opt-out (an opt-out of every channel stays until removed itself)."""
    _preference_change(customer, channel, message_class, out=False)


def asyncapi_document() -> str:
    """The AsyncAPI document of every topic the four services consume and produce."""
    from faststream.specification import AsyncAPI

    from followup.services import SERVICES

    brokers = []
    for spec in SERVICES.values():
        # Fixed settings, not the environment: the document must not depend on a deployment.
        settings = spec.settings_class()(
            _env_file=None,
            kafka_bootstrap_servers="kafka:9092",
            kafka_topic_prefix="",
            database_url="postgresql://followup@db/followup",
            notifier_dry_run=True,
        )
        brokers.append(spec.create_app(settings=settings).brokers[0])
    document = AsyncAPI(
        *brokers,
        title="Order follow-up services",
        version="1.0.0",
        description="Shop events consumed by the reminder, logistics, after-sales and notifier "
        "services, and the commands and status events they exchange. Every message value is a "
        "CloudEvents 1.0 structured-mode JSON object.",
    ).to_specification()
    return json.dumps(document.to_jsonable(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


@app.command()
def docs(
    output: Annotated[Path, typer.Option(help="Where to write the document")] = ASYNCAPI_FILE,
    check: Annotated[bool, typer.Option(help="Fail if the file is not current")] = False,
) -> None:
    """Write the AsyncAPI document for all topics (or check that the committed one is current)."""
    document = asyncapi_document()
    if check:
        if not output.is_file() or output.read_text(encoding="utf-8") != document:
            print(f"{output} is out of date: run `followup docs`", file=sys.stderr)
            raise typer.Exit(1)
        print(f"{output} is current")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document, encoding="utf-8")
    print(f"wrote {output}")


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
