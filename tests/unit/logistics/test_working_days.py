"""Working-day arithmetic on the mainland China holiday calendar, in the shop's timezone."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.logistics.working_days import WorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
CN = WorkingCalendar("cn")


def at(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 11, 23), True),  # an ordinary Monday
        (date(2026, 11, 22), False),  # an ordinary Sunday
        (date(2026, 10, 1), False),  # National Day, a Thursday
        (date(2026, 10, 10), True),  # a Saturday made a workday for National Day (调休)
        (date(2026, 9, 20), True),  # a Sunday made a workday
        (date(2026, 2, 20), False),  # Spring Festival week, a Friday
        (date(2026, 2, 28), True),  # a Saturday made a workday for Spring Festival
    ],
)
def test_holidays_and_make_up_workdays(day: date, working: bool) -> None:
    assert CN.is_working_day(day) is working


def test_two_working_days_skip_the_weekend() -> None:
    deadline = CN.add_working_days(at(2026, 11, 20, 15, 0), 2, "Asia/Shanghai")  # a Friday
    assert deadline.at == at(2026, 11, 24, 15, 0)  # Tuesday, same time
    assert deadline.uncovered_years == ()


def test_paid_on_a_rest_day_counts_from_the_next_working_day() -> None:
    deadline = CN.add_working_days(at(2026, 11, 21, 10, 0), 2, "Asia/Shanghai")  # Saturday
    assert deadline.at == at(2026, 11, 25, 0, 0)  # the end of Tuesday


def test_the_national_day_week_does_not_count() -> None:
    # Paid on Wednesday 30 September: 14 h that day, then 1-7 October are holidays.
    deadline = CN.add_working_days(at(2026, 9, 30, 10, 0), 2, "Asia/Shanghai")
    assert deadline.at == at(2026, 10, 9, 10, 0)


def test_a_make_up_saturday_counts_as_a_working_day() -> None:
    # Friday 9 October, then Saturday 10 October is a workday: Monday, not Tuesday.
    deadline = CN.add_working_days(at(2026, 10, 9, 10, 0), 2, "Asia/Shanghai")
    assert deadline.at == at(2026, 10, 12, 10, 0)
    weekdays = WorkingCalendar("weekdays").add_working_days(at(2026, 10, 9, 10, 0), 2, "UTC")
    assert weekdays.at.astimezone(SHANGHAI) == at(2026, 10, 13, 10, 0)


def test_the_days_follow_the_shops_timezone() -> None:
    # 20:00 UTC on Friday is 04:00 on Saturday in Shanghai: a rest day there.
    paid = datetime(2026, 11, 20, 20, 0, tzinfo=ZoneInfo("UTC"))
    in_shanghai = CN.add_working_days(paid, 1, "Asia/Shanghai")
    in_london = CN.add_working_days(paid, 1, "Europe/London")
    assert in_shanghai.at == at(2026, 11, 24, 0, 0)
    assert in_london.at == datetime(2026, 11, 23, 20, 0, tzinfo=ZoneInfo("Europe/London"))


def test_years_without_holiday_data_count_monday_to_friday_and_say_so() -> None:
    assert CN.last_year == 2026
    assert not CN.covers(date(2027, 1, 4))
    deadline = CN.add_working_days(at(2026, 12, 31, 12, 0), 2, "Asia/Shanghai")  # Thursday
    # 1 January 2027 would be a holiday, but there is no data for 2027 yet: Friday counts.
    assert deadline.at == at(2027, 1, 4, 12, 0)
    assert deadline.uncovered_years == (2027,)


def test_the_shop_can_add_days_the_library_does_not_know() -> None:
    calendar = WorkingCalendar(
        "cn", extra_holidays=[date(2027, 1, 1)], extra_workdays=[date(2026, 11, 21)]
    )
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.is_working_day(date(2026, 11, 21))  # a Saturday the warehouse works
    deadline = calendar.add_working_days(at(2026, 12, 31, 12, 0), 2, "Asia/Shanghai")
    assert deadline.at == at(2027, 1, 5, 12, 0)
