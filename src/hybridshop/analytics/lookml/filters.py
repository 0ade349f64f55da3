"""Looker filter expressions (https://cloud.google.com/looker/docs/filter-expressions) → SQL.

Three grammars, chosen by the type of the filtered field: strings, numbers and dates (yesno
fields take ``yes``/``no``). Each function returns one BigQuery boolean expression over
``column`` (already SQL), or ``None`` for an empty expression ("is any value"), and raises
``FilterExpressionError`` for an expression Looker would refuse.

Relative dates (``7 days``, ``last month``, ``before 3 days ago``) are resolved at compile time
against ``now`` (UTC) into literal ``TIMESTAMP('…')`` bounds, weeks starting on Monday: the
same rows Looker selects when its query time zone is UTC, and SQL whose result does not
depend on the clock of the database that runs it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hybridshop.analytics.lookml.errors import FilterExpressionError

# --- shared helpers ---------------------------------------------------------------------


def sql_string(value: str) -> str:
    """A BigQuery string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _split_top(expr: str) -> list[str]:
    """Split on commas outside brackets, keeping ``^,`` escapes intact."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == "^" and i + 1 < len(expr):
            cur.append(expr[i : i + 2])
            i += 2
            continue
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _or(terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def _and(terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else "(" + " AND ".join(terms) + ")"


def _combine(positive: list[str], negative: list[str]) -> str:
    """Looker's rule: positive terms are ORed, negated terms ANDed, then both ANDed."""
    parts = []
    if positive:
        parts.append(_or(positive))
    parts.extend(negative)
    return _and(parts)


# --- strings ----------------------------------------------------------------------------


def _unescape(term: str) -> tuple[str, bool]:
    """(text with ``^x`` resolved and LIKE wildcards kept, has_wildcard)."""
    out: list[str] = []
    wildcard = False
    i = 0
    while i < len(term):
        ch = term[i]
        if ch == "^" and i + 1 < len(term):
            nxt = term[i + 1]
            out.append("\\" + nxt if nxt in "%_" else nxt)
            i += 2
            continue
        if ch in "%_":
            wildcard = True
        out.append(ch)
        i += 1
    return "".join(out), wildcard


def _literal(text: str) -> str:
    """The LIKE-escaped text back to a plain value (for = comparisons)."""
    return text.replace("\\%", "%").replace("\\_", "_")


def string_condition(column: str, expr: str) -> str | None:
    """``FOO``, ``FOO,BAR``, ``%FOO%``, ``FOO%``, ``_UF``, ``EMPTY``, ``NULL``, ``-FOO``,
    ``-NULL``, ``-EMPTY``, ``-%FOO%``; ``^`` escapes a comma, ``%``, ``_``, ``-`` or ``^``."""
    if expr.strip() == "":
        return None
    positive_values: list[str] = []
    positive: list[str] = []
    negative_values: list[str] = []
    negative: list[str] = []
    for raw in _split_top(expr):
        term = raw.strip()
        if term == "":
            continue
        negated = term.startswith("-")
        if negated:
            term = term[1:].strip()
            if term == "":
                raise FilterExpressionError(f"{expr!r}: '-' must be followed by a value")
        upper = term.upper()
        if upper == "NULL":
            (negative if negated else positive).append(
                f"{column} IS NOT NULL" if negated else f"{column} IS NULL"
            )
            continue
        if upper == "EMPTY":
            (negative if negated else positive).append(
                f"({column} IS NOT NULL AND LENGTH({column}) <> 0)"
                if negated
                else f"({column} IS NULL OR LENGTH({column}) = 0)"
            )
            continue
        text, wildcard = _unescape(term)
        if wildcard:
            if negated:
                negative.append(f"({column} NOT LIKE {sql_string(text)} OR {column} IS NULL)")
            else:
                positive.append(f"{column} LIKE {sql_string(text)}")
        elif negated:
            negative_values.append(_literal(text))
        else:
            positive_values.append(_literal(text))
    if positive_values:
        if len(positive_values) == 1:
            positive.insert(0, f"{column} = {sql_string(positive_values[0])}")
        else:
            values = ", ".join(sql_string(v) for v in positive_values)
            positive.insert(0, f"{column} IN ({values})")
    if negative_values:
        if len(negative_values) == 1:
            cond = f"{column} <> {sql_string(negative_values[0])}"
        else:
            cond = f"{column} NOT IN ({', '.join(sql_string(v) for v in negative_values)})"
        negative.insert(0, f"({cond} OR {column} IS NULL)")
    if not positive and not negative:
        return None
    return _combine(positive, negative)


# --- yesno ------------------------------------------------------------------------------


def yesno_condition(column: str, expr: str) -> str | None:
    """``yes`` / ``no`` on a yesno dimension (whose SQL yields 'Yes' / 'No')."""
    value = expr.strip().lower()
    if value == "":
        return None
    if value in ("yes", "true"):
        return f"{column} = 'Yes'"
    if value in ("no", "false"):
        return f"{column} = 'No'"
    raise FilterExpressionError(f"{expr!r}: a yesno filter is 'yes' or 'no'")


# --- numbers ----------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RE_CMP = re.compile(rf"^(>=|<=|!=|<>|=|>|<)?\s*({_NUM})$")
_RE_RANGE = re.compile(rf"^({_NUM})?\s*\bto\b\s*({_NUM})?$", re.IGNORECASE)
_RE_INTERVAL = re.compile(
    rf"^([\[(])\s*(-inf|{_NUM})\s*,\s*(inf|\+inf|{_NUM})\s*([\])])$", re.IGNORECASE
)


def _num(value: str) -> str:
    return value.lstrip("+")


def _number_atom(column: str, atom: str, expr: str) -> tuple[str, bool]:
    """(condition, negated) for one number term."""
    text = atom.strip()
    low = text.lower()
    if low == "null":
        return f"{column} IS NULL", False
    if low == "not null":
        return f"{column} IS NOT NULL", True
    negated = False
    if low.startswith("not ") or low.startswith("not("):
        negated = True
        text = text[3:].strip()
        low = text.lower()
    if m := _RE_INTERVAL.match(text):
        lo_b, lo, hi, hi_b = m.groups()
        conds = []
        if lo.lower() != "-inf":
            conds.append(f"{column} {'>' if lo_b == '(' else '>='} {_num(lo)}")
        if hi.lower() not in ("inf", "+inf"):
            conds.append(f"{column} {'<' if hi_b == ')' else '<='} {_num(hi)}")
        cond = _and(conds) if conds else f"{column} IS NOT NULL"
    elif (m := _RE_RANGE.match(text)) and (m.group(1) or m.group(2)):
        lo, hi = m.groups()
        conds = []
        if lo is not None:
            conds.append(f"{column} >= {_num(lo)}")
        if hi is not None:
            conds.append(f"{column} <= {_num(hi)}")
        cond = _and(conds)
    elif m := _RE_CMP.match(text):
        op, value = m.groups()
        op = {"!=": "<>", None: "="}.get(op, op)
        cond = f"{column} {op} {_num(value)}"
    else:
        raise FilterExpressionError(f"{expr!r}: {atom.strip()!r} is not a number filter")
    if negated:
        return f"(NOT {cond} OR {column} IS NULL)", True
    return cond, False


def number_condition(column: str, expr: str) -> str | None:
    """``5``, ``not 5``, ``1, 3, 5``, ``not 66, 99, 4``, ``5.5 to 10``, ``1 to``, ``to 100``,
    ``>= 5.5 AND <= 10``, ``<3 OR >80``, ``NULL``, ``NOT NULL``, ``(1,100]``,
    ``[0,9],[20,29]``, ``(1, inf)``."""
    if expr.strip() == "":
        return None
    parts = [p.strip() for p in _split_top(expr)]
    if any(p == "" for p in parts):
        raise FilterExpressionError(f"{expr!r}: empty term between commas")
    # `not 66, 99, 4`: the leading NOT applies to the whole list of plain numbers
    if (
        len(parts) > 1
        and parts[0].lower().startswith("not ")
        and all(re.fullmatch(_NUM, p) for p in [parts[0][4:].strip(), *parts[1:]])
    ):
        parts = [parts[0]] + [f"not {p}" for p in parts[1:]]
    positive: list[str] = []
    negative: list[str] = []
    plain: list[str] = []
    for part in parts:
        ors = re.split(r"\s+or\s+", part, flags=re.IGNORECASE)
        if len(ors) == 1 and re.fullmatch(_NUM, part):
            plain.append(_num(part))
            continue
        or_terms: list[str] = []
        all_negated = True
        for o in ors:
            ands = re.split(r"\s+and\s+", o, flags=re.IGNORECASE)
            atoms = [_number_atom(column, a, expr) for a in ands]
            or_terms.append(_and([a for a, _ in atoms]))
            all_negated = all_negated and all(n for _, n in atoms)
        (negative if all_negated and len(ors) == 1 else positive).append(_or(or_terms))
    if plain:
        positive.insert(
            0, f"{column} = {plain[0]}" if len(plain) == 1 else f"{column} IN ({', '.join(plain)})"
        )
    return _combine(positive, negative)


# --- dates ------------------------------------------------------------------------------

_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
_UNIT_RE = r"(second|minute|hour|day|week|month|quarter|year)s?"
_ABS_RE = re.compile(
    r"^(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2})(?:[ t](\d{1,2}):(\d{2})(?::(\d{2}))?)?)?)?$",
    re.IGNORECASE,
)


def _unit(word: str) -> str:
    word = word.lower().rstrip("s")
    if word not in _UNITS:
        raise FilterExpressionError(f"unknown time unit {word!r}")
    return word


def trunc(ts: datetime, unit: str) -> datetime:
    """Start of the ``unit`` containing ``ts`` (weeks start on Monday)."""
    if unit == "second":
        return ts.replace(microsecond=0)
    if unit == "minute":
        return ts.replace(second=0, microsecond=0)
    if unit == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
    if unit == "year":
        return day.replace(day=1, month=1)
    raise FilterExpressionError(f"unknown time unit {unit!r}")


def add(ts: datetime, n: int, unit: str) -> datetime:
    """``ts`` moved by ``n`` units (months clamp to the month's last day)."""
    if unit in ("second", "minute", "hour", "day", "week"):
        return ts + timedelta(**{unit + "s": n})
    months = n * {"month": 1, "quarter": 3, "year": 12}[unit]
    total = ts.year * 12 + ts.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    for day in (ts.day, 30, 29, 28):
        try:
            return ts.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise FilterExpressionError("date out of range")  # pragma: no cover


def _absolute(text: str) -> tuple[datetime, str] | None:
    """(start, granularity) of ``2018``, ``2018/05``, ``2018-05-18``, ``2018-05-18 12:00``."""
    m = _ABS_RE.match(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = m.groups()
    try:
        if hour is not None:
            ts = datetime(
                int(year),
                int(month),
                int(day),
                int(hour),
                int(minute),
                int(second or 0),
                tzinfo=UTC,
            )
            return ts, "second" if second is not None else "minute"
        if day is not None:
            return datetime(int(year), int(month), int(day), tzinfo=UTC), "day"
        if month is not None:
            return datetime(int(year), int(month), 1, tzinfo=UTC), "month"
        return datetime(int(year), 1, 1, tzinfo=UTC), "year"
    except ValueError as exc:
        raise FilterExpressionError(f"{text!r}: {exc}") from None


Interval = tuple[datetime | None, datetime | None]


def _point(text: str, now: datetime) -> datetime | None:
    """A moment for before/after/to: an absolute date(time), ``now``, ``today``, ``N units
    ago`` / ``N units from now`` (start of that unit), ``this|last|next unit``."""
    t = text.strip().lower()
    if t == "now":
        return now
    if (a := _absolute(t)) is not None:
        return a[0]
    iv = _relative(t, now)
    return iv[0] if iv is not None else None


def _relative(t: str, now: datetime) -> Interval | None:
    if t == "today":
        start = trunc(now, "day")
        return start, add(start, 1, "day")
    if t == "yesterday":
        start = add(trunc(now, "day"), -1, "day")
        return start, add(start, 1, "day")
    if t == "tomorrow":
        start = add(trunc(now, "day"), 1, "day")
        return start, add(start, 1, "day")
    if m := re.fullmatch(rf"(this|last|next)\s+{_UNIT_RE}", t):
        unit = _unit(m.group(2))
        start = add(trunc(now, unit), {"this": 0, "last": -1, "next": 1}[m.group(1)], unit)
        return start, add(start, 1, unit)
    if m := re.fullmatch(rf"(\d+)\s+{_UNIT_RE}\s+ago\s+for\s+(\d+)\s+{_UNIT_RE}", t):
        unit, unit2 = _unit(m.group(2)), _unit(m.group(4))
        start = add(trunc(now, unit), -int(m.group(1)), unit)
        return start, add(start, int(m.group(3)), unit2)
    if m := re.fullmatch(rf"(\d+)\s+{_UNIT_RE}\s+ago", t):
        unit = _unit(m.group(2))
        start = add(trunc(now, unit), -int(m.group(1)), unit)
        return start, add(start, 1, unit)
    if m := re.fullmatch(rf"(\d+)\s+{_UNIT_RE}\s+from\s+now", t):
        unit = _unit(m.group(2))
        start = add(trunc(now, unit), int(m.group(1)), unit)
        return start, add(start, 1, unit)
    if m := re.fullmatch(rf"(\d+)\s+complete\s+{_UNIT_RE}", t):
        unit = _unit(m.group(2))
        end = trunc(now, unit)
        return add(end, -int(m.group(1)), unit), end
    if m := re.fullmatch(rf"(?:last\s+)?(\d+)\s+{_UNIT_RE}", t):
        n, unit = int(m.group(1)), _unit(m.group(2))
        if n < 1:
            raise FilterExpressionError(f"{t!r}: the count must be at least 1")
        current = trunc(now, unit)
        return add(current, -(n - 1), unit), add(current, 1, unit)
    return None


def date_interval(term: str, now: datetime) -> Interval | str:
    """One date term → [start, end) (either may be None), or 'null' / 'not null'."""
    t = re.sub(r"\s+", " ", term.strip().lower())
    if t in ("null", "not null"):
        return t
    if m := re.fullmatch(r"(before|after) (.+)", t):
        point = _point(m.group(2), now)
        if point is None:
            raise FilterExpressionError(f"{term!r}: cannot read {m.group(2)!r} as a date")
        return (None, point) if m.group(1) == "before" else (point, None)
    if m := re.fullmatch(rf"(.+?) for (\d+) {_UNIT_RE}", t):
        start = _point(m.group(1), now)
        if start is not None:
            return start, add(start, int(m.group(2)), _unit(m.group(3)))
    if " to " in t:
        left, right = (s.strip() for s in t.split(" to ", 1))
        a, b = _point(left, now), _point(right, now)
        if a is None or b is None:
            raise FilterExpressionError(f"{term!r}: 'A to B' needs two dates")
        return a, b
    if (ab := _absolute(t)) is not None:
        start, gran = ab
        return start, add(start, 1, gran)
    rel = _relative(t, now)
    if rel is None:
        raise FilterExpressionError(f"{term!r} is not a date filter")
    return rel


def sql_timestamp(ts: datetime) -> str:
    return f"TIMESTAMP('{ts.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}')"


def date_condition(column: str, expr: str, now: datetime | None = None) -> str | None:
    """Date filters on a TIMESTAMP ``column``: ``3 days``, ``3 days ago``, ``3 months ago for
    2 days``, ``before 3 days ago``, ``after 2018-10-05``, ``2018-05-18 to 2018-05-20``,
    ``2018``, ``2018/01``, ``this|last|next week``, ``today``, ``yesterday``, ``null``,
    ``not null``; comma-separated terms are ORed."""
    if expr.strip() == "":
        return None
    now = (now or datetime.now(UTC)).astimezone(UTC)
    terms: list[str] = []
    for raw in _split_top(expr):
        if raw.strip() == "":
            continue
        iv = date_interval(raw, now)
        if iv == "null":
            terms.append(f"{column} IS NULL")
        elif iv == "not null":
            terms.append(f"{column} IS NOT NULL")
        else:
            assert isinstance(iv, tuple)
            start, end = iv
            conds = []
            if start is not None:
                conds.append(f"{column} >= {sql_timestamp(start)}")
            if end is not None:
                conds.append(f"{column} < {sql_timestamp(end)}")
            terms.append(_and(conds))
    if not terms:
        return None
    return _or(terms)
