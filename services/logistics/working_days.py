"""Working days for the dispatch promise: which days the warehouse works, and when N working
days after a payment end. Pure; the holiday data comes from the ``chinese-calendar`` library.

Mainland China moves weekends around public holidays (调休): a Saturday can be a make-up
workday and a Monday a holiday, so "Monday to Friday" is wrong for several weeks a year. The
library is updated once the State Council publishes the next year's schedule (usually in
November); for a year it does not cover yet we count Monday to Friday and say so in the
evidence, a log line and a metric, instead of failing or guessing silently.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

_SATURDAY = 5
# The longest stretch of rest days in the data is a week; this bounds the walk generously.
_MAX_DAYS_WALKED = 3660


@dataclass(frozen=True)
class WorkingDeadline:
    at: datetime
    uncovered_years: tuple[int, ...] = ()
    """Years counted Monday to Friday because the calendar has no holiday data for them."""


class WorkingCalendar:
    def __init__(
        self,
        kind: str = "cn",
        *,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
    ) -> None:
        self.kind = kind
        self._holidays = frozenset(extra_holidays)
        self._workdays = frozenset(extra_workdays)
        data_years: set[int] = {d.year for d in chinese_calendar.holidays}
        self.first_year: int = min(data_years) if kind == "cn" else 1
        self.last_year: int = max(data_years) if kind == "cn" else 9999

    def covers(self, day: date) -> bool:
        """Whether the holiday data knows this day's year (always, for Monday to Friday)."""
        return self.first_year <= day.year <= self.last_year

    def is_working_day(self, day: date) -> bool:
        if day in self._workdays:
            return True
        if day in self._holidays:
            return False
        if self.kind == "cn" and self.covers(day):
            working: bool = chinese_calendar.is_workday(day)
            return working
        return day.weekday() < _SATURDAY

    def add_working_days(self, start: datetime, days: int, timezone: str) -> WorkingDeadline:
        """The moment ``days`` full working days (24 h each) have passed since ``start``.

        Only time on working days counts, in the shop's timezone: paid on Friday at 15:00,
        two working days end on Tuesday at 15:00; paid on a Saturday, they end at midnight
        after Tuesday.
        """
        zone = ZoneInfo(timezone)
        cursor = start.astimezone(zone)
        remaining = timedelta(days=days)
        uncovered: set[int] = set()
        for _ in range(_MAX_DAYS_WALKED):
            day = cursor.date()
            if not self.covers(day):
                uncovered.add(day.year)
            day_end = datetime.combine(day + timedelta(days=1), time(0), zone)
            if self.is_working_day(day):
                available = day_end - cursor
                if available >= remaining:
                    return WorkingDeadline(cursor + remaining, tuple(sorted(uncovered)))
                remaining -= available
            cursor = day_end
        raise ValueError(f"no {days} working days within ten years of {start.isoformat()}")
