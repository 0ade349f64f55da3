"""Looker value formats (``value_format_name`` and Excel-style ``value_format``) in Python.

Every value a person reads (table cells, single values, tooltips, axis labels of the PNG) is
formatted here, on the server, so the page, the self-contained HTML and the PNG show the same
text. Looker's named formats: https://cloud.google.com/looker/docs/reference/param-field-value-format-name
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_CURRENCY = {"usd": "$", "eur": "€", "gbp": "£"}
_PATTERN = re.compile(r"[#0,]*0(?:\.([0#]+))?|#(?:[#,]*)(?:\.([0#]+))?")


@dataclass(frozen=True)
class NumberFormat:
    """prefix + number with ``decimals`` (``grouping`` = thousands separators) + suffix."""

    decimals: int | None = None  # None: as many as needed, up to 2
    grouping: bool = True
    prefix: str = ""
    suffix: str = ""
    percent: bool = False  # multiply by 100

    def format(self, value: Any) -> str:
        if value is None:
            return "∅"
        if isinstance(value, bool):
            return "Yes" if value else "No"
        if not isinstance(value, int | float | Decimal):
            return str(value)
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return str(number)
        if self.percent:
            number *= 100
        decimals = self.decimals
        if decimals is None:
            decimals = 0 if float(number).is_integer() else 2
        sep = "," if self.grouping else ""
        text = f"{abs(number):{sep}.{decimals}f}"
        sign = "-" if number < 0 and float(text.replace(",", "")) != 0 else ""
        return f"{sign}{self.prefix}{text}{self.suffix}"

    def d3(self) -> str:
        """The d3-format string for the number part (axis labels in Vega-Lite)."""
        grouping = "," if self.grouping else ""
        if self.decimals is None:
            return f"{grouping}~r" if not self.percent else "~%"
        if self.percent:
            return f"{grouping}.{self.decimals}%"
        return f"{grouping}.{self.decimals}f"


def parse_value_format(spec: str) -> NumberFormat:
    """An Excel-style Looker ``value_format`` such as ``"€#,##0.00"``, ``"0.0%"``, ``"#,##0"``."""
    text = spec.strip().strip('"')
    match = _PATTERN.search(text)
    if match is None:
        return NumberFormat()
    decimals_part = match.group(1) or match.group(2) or ""
    prefix = text[: match.start()].replace('"', "").replace("\\", "")
    suffix = text[match.end() :].replace('"', "").replace("\\", "")
    percent = "%" in suffix
    return NumberFormat(
        decimals=len(decimals_part),
        grouping="," in match.group(0),
        prefix=prefix,
        suffix=suffix,
        percent=percent,
    )


def named_format(name: str) -> NumberFormat | None:
    """Looker's ``value_format_name`` (usd, eur_0, decimal_2, percent_1, id, ...)."""
    name = name.strip().lower()
    if name == "id":
        return NumberFormat(decimals=0, grouping=False)
    base, _, digits = name.partition("_")
    if base in _CURRENCY:
        return NumberFormat(decimals=int(digits) if digits.isdigit() else 2, prefix=_CURRENCY[base])
    if base == "decimal" and digits.isdigit():
        return NumberFormat(decimals=int(digits))
    if base == "percent" and digits.isdigit():
        return NumberFormat(decimals=int(digits), percent=True)
    return None


def field_format(field: Any) -> NumberFormat:
    """The format of a compiled field (``value_format`` wins over ``value_format_name``)."""
    value_format = getattr(field, "value_format", None)
    if value_format:
        return parse_value_format(str(value_format))
    name = getattr(field, "value_format_name", None)
    if name:
        found = named_format(str(name))
        if found is not None:
            return found
    ftype = str(getattr(field, "type", "") or "")
    if getattr(field, "category", "") == "dimension" and ftype in {"number", "int"}:
        return NumberFormat(grouping=False)
    return NumberFormat()


def format_value(value: Any, fmt: NumberFormat) -> str:
    """The text a person reads for one cell (dates as ISO, numbers with ``fmt``)."""
    if value is None:
        return "∅"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return fmt.format(value)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def json_value(value: Any) -> Any:
    """A JSON-safe copy of a DuckDB value (Decimal -> float, dates -> ISO strings)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
