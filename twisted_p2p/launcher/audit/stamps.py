"""Reading the time stamps other implementations write.

The course says of [Time]: it "contains the date, hour, minute, and second. The format
of [Time] is up to you." So any stamp with those four is right, whatever its layout;
this reads the layouts students' languages write by default or by a common pattern:

* ISO 8601, with a space or ``T`` between date and time, ``-``, ``/`` or ``.`` between
  the date's numbers, fractions of any length after ``.`` or ``,``, and a zone or not
  (``Z``, ``+01:00``, ``+0100``, ``UTC``, ``CET``, ``-05:00[America/New_York]``);
* ``java.util.Date.toString()`` (``Thu Dec 03 19:20:33 UTC 2026``, with or without the
  zone) and C's ``ctime``/``asctime`` (``Thu Dec  3 19:20:33 2026``);
* day and month names the other way round (``Dec 3, 2026 7:20:33 PM``,
  ``Thu, 03 Dec 2026 19:20:33 GMT``, ``03-Dec-2026 19:20:33``);
* numeric dates with the year last (``12/03/2026 19:20:33``); such a date is ambiguous,
  and is read month first, as in the US, unless its first number cannot be a month
  (``13/12/2026`` is 13 December). Either reading gives the same intervals between the
  lines of a log within a day, which is what the rules time;
* ``yyyy.MM.dd.HH.mm.ss``, and the time before the date (``19:20:33 2026-12-03``).

Any of them may be in square brackets or parentheses. A numeric zone is honoured; a
zone name other than UTC/GMT/Z is read as local time (names such as CST are ambiguous),
which only matters if a log changes zone in the middle.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAY = r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?"
_MONTH_NAME = rf"(?P<mname>{'|'.join(_MONTHS)})[a-z]*\.?"
_TIME = (r"(?P<h>\d{1,2})(?P<ts>[:.])(?P<mi>\d{2})(?P=ts)(?P<s>\d{2})(?:[.,:](?P<frac>\d+))?"
         r"(?:\s*(?P<ampm>[ap])\.?m\.?)?")
_ZONE = (r"(?:\s*(?P<zone>z|(?:utc|gmt)?\s*[+-]\d{1,2}(?::?\d{2})?|[a-z]{2,5}(?:[+-]\d{1,2}(?::?\d{2})?)?)"
         r"(?:\[[\w/+-]+\])?)?")
_DAY = r"(?P<d>\d{1,2})(?:st|nd|rd|th)?"
_DATES = (
    r"(?P<y>\d{4})(?P<ds>[-/.]?)(?P<mo>\d{1,2})(?P=ds)(?P<d>\d{1,2})",  # 2026-12-03, 2026/12/03, 2026.12.03
    r"(?P<a>\d{1,2})(?P<ds>[-/.])(?P<b>\d{1,2})(?P=ds)(?P<y>\d{4}|\d{2})",  # 12/03/2026, 03.12.2026
    rf"{_MONTH_NAME}\s+{_DAY},?\s+(?P<y>\d{{4}})",  # Dec 3, 2026
    rf"{_DAY}(?:\s+|-){_MONTH_NAME}(?:\s+|-)(?P<y>\d{{4}})",  # 03 Dec 2026, 03-Dec-2026
)
_BETWEEN = r"(?:\s*[t_,@.-]\s*|\s+)"
_FORMS = [re.compile(rf"{_WEEKDAY}{date}{_BETWEEN}{_TIME}{_ZONE}", re.IGNORECASE) for date in _DATES] + [
    re.compile(rf"{_TIME}{_ZONE}{_BETWEEN}{_WEEKDAY}{date}", re.IGNORECASE) for date in _DATES] + [
    # java.util.Date.toString() and ctime: the year after the time (and the zone)
    re.compile(rf"{_WEEKDAY}{_MONTH_NAME}\s+{_DAY}\s+{_TIME}{_ZONE}\s+(?P<y>\d{{4}})", re.IGNORECASE),
]
_TIME_OF_DAY = re.compile(rf"{_TIME}{_ZONE}", re.IGNORECASE)
_BRACKETS = {"[": "]", "(": ")", "<": ">"}


@dataclass(frozen=True)
class Stamp:
    """What a stamp says: seconds (since the epoch, or since midnight without a date;
    None if unreadable or a date the platform cannot place), the precision in seconds,
    whether it has a date, and whether it could be read at all."""

    seconds: float | None
    resolution: float
    dated: bool
    readable: bool


UNREADABLE = Stamp(None, math.inf, False, False)


def unwrap(stamp: str) -> str:
    """The stamp without surrounding spaces and one pair of brackets, which many logs use."""
    stamp = stamp.strip()
    if len(stamp) > 1 and _BRACKETS.get(stamp[0]) == stamp[-1]:
        stamp = stamp[1:-1].strip()
    return stamp


def read_stamp(text: str) -> Stamp:
    """Read another implementation's stamp (see the module's list of layouts)."""
    stamp = unwrap(text)
    for form in _FORMS:
        match = form.fullmatch(stamp)
        if match is not None:
            return _dated(match)
    match = _TIME_OF_DAY.fullmatch(stamp)
    if match is None:
        return UNREADABLE
    try:
        hour, minute, second = _clock(match)
    except ValueError:
        return UNREADABLE
    return Stamp(hour * 3600 + minute * 60 + second + _fraction(match), _resolution(match), False, True)


def _dated(match: re.Match[str]) -> Stamp:
    fields = match.groupdict()
    year = int(fields["y"]) + (2000 if len(fields["y"]) == 2 else 0)
    if fields.get("mname"):
        month, day = _MONTHS.index(fields["mname"][:3].lower()) + 1, int(fields["d"])
    elif fields.get("mo"):
        month, day = int(fields["mo"]), int(fields["d"])
    else:  # the year last: month first unless the first number cannot be a month
        first, second = int(fields["a"]), int(fields["b"])
        month, day = (second, first) if first > 12 else (first, second)
    try:
        hour, minute, second = _clock(match)
        when = datetime(year, month, day, hour, minute, second, tzinfo=_zone(fields["zone"]))
    except ValueError:
        return UNREADABLE
    try:
        seconds: float | None = when.timestamp() + _fraction(match)
    except (ValueError, OverflowError, OSError):  # a date the platform cannot place
        seconds = None
    return Stamp(seconds, _resolution(match), True, True)


def _clock(match: re.Match[str]) -> tuple[int, int, int]:
    """(hour, minute, second), with a 12-hour clock's AM/PM applied; ValueError if impossible."""
    hour, minute, second = int(match["h"]), int(match["mi"]), int(match["s"])
    if match["ampm"]:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} on a 12-hour clock")
        hour = hour % 12 + (12 if match["ampm"].lower() == "p" else 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError("no such time of day")
    return hour, minute, second


def _fraction(match: re.Match[str]) -> float:
    return float(f"0.{match['frac']}") if match["frac"] else 0.0


def _resolution(match: re.Match[str]) -> float:
    """Whole seconds are good to a second; each digit of a fraction makes it ten times finer."""
    return 10.0 ** -len(match["frac"]) if match["frac"] else 1.0


def _zone(name: str | None) -> timezone | None:
    """A numeric offset or UTC/GMT/Z; None (local time) for other names."""
    if not name:
        return None
    name = name.strip().upper()
    offset = re.search(r"([+-])(\d{1,2}):?(\d{2})?$", name)
    if offset is not None:
        sign = -1 if offset[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(offset[2]), minutes=int(offset[3] or 0)))
    return UTC if name in ("Z", "UTC", "GMT") else None
