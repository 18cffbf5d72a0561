from pathlib import Path

import pytest

from followup.settings import ConfigError, RuntimeSettings, load_policy, load_settings
from services.notifier.settings import NotifierPolicy, NotifierSettings
from services.reminder.settings import ReminderPolicy


def test_missing_file_means_default_policy() -> None:
    policy = load_policy(None, "reminder", ReminderPolicy)
    assert [t.after_created for t in policy.tiers[:2]] == [
        p.after_created for p in ReminderPolicy().tiers[:2]
    ]


def test_policy_errors_name_the_file_section_field_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "followup.toml"
    path.write_text(
        '[reminder]\nlate_grace = "soon"\n[[reminder.tiers]]\nafter_created = "15m"\nbefore_deadline = "1h"\n'
    )
    with pytest.raises(ConfigError) as error:
        load_policy(path, "reminder", ReminderPolicy)
    message = str(error.value)
    assert f"{path} [reminder]" in message
    assert "late_grace: Value error, invalid duration 'soon'; use seconds (900)" in message
    assert "tiers.0: Value error, set exactly one of after_created or before_deadline" in message


def test_unknown_policy_keys_are_typos_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "followup.toml"
    path.write_text("[notifier]\nconcurency = 3\n")
    with pytest.raises(ConfigError, match="concurency: Extra inputs are not permitted"):
        load_policy(path, "notifier", NotifierPolicy)


def test_broken_toml_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "followup.toml"
    path.write_text("[reminder\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(path, "reminder", ReminderPolicy)


def test_missing_connections_say_which_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    settings = RuntimeSettings(_env_file=None)
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS not set"):
        settings.require_connections()


def test_environment_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BATCH_MAX_RECORDS", "lots")
    with pytest.raises(
        ConfigError, match="KAFKA_BATCH_MAX_RECORDS: Input should be a valid integer"
    ):
        load_settings(RuntimeSettings)


@pytest.mark.parametrize("secret", ["changeme", "short"])
def test_placeholder_webhook_secrets_are_refused(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", "http://gateway/messages")
    monkeypatch.setenv("NOTIFIER_WEBHOOK_SECRET", secret)
    with pytest.raises(ConfigError, match="NOTIFIER_WEBHOOK_SECRET looks like a placeholder"):
        load_settings(NotifierSettings)


def test_webhook_without_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", "http://gateway/messages")
    monkeypatch.delenv("NOTIFIER_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="NOTIFIER_WEBHOOK_SECRET is required"):
        load_settings(NotifierSettings)
