from datetime import timedelta

import pytest

from followup.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (900, 900),
        (1.5, 1.5),
        ("900", 900),
        ("90s", 90),
        ("15m", 900),
        ("3h", 10800),
        ("2d", 172800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        (" 2 h ", 7200),
        ("1d2h3m4s", 93784),
        (timedelta(minutes=2), 120),
    ],
)
def test_durations_accept_seconds_and_units(given: object, seconds: float) -> None:
    assert parse_duration(given) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "given", ["ten minutes", "15x", "", "-5", -5, True, "PT15M", None, "1h-30m"]
)
def test_invalid_durations_say_how_to_write_one(given: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(given)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (5400, "1h30m"), (90061, "1d1h1m1s"), (0.5, "0.5s")]
)
def test_durations_print_in_their_shortest_form(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)
