"""JSON bodies with bounded nesting: the partner API's DRF parser, and `loads` for other JSON staff
or partners send (admin forms, catalog files).

Python's json module recurses once per level of nesting: a body such as `[[[[…]]]]` a few
thousand levels deep raises RecursionError, which is not a ValueError, so DRF's own parser lets
it through as a 500 (and anything that walks the parsed value recursively would trip later).
No document of ours nests more than a handful of levels, so anything deeper than
MAX_JSON_DEPTH is refused as malformed before it is parsed at all.
"""

from __future__ import annotations

import codecs
import json
import operator
import re
from itertools import accumulate, count
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

# An order nests 6 levels (order, items, line, wallet, componentSchedule, visit); a catalog file
# about as many. Far above what any document of ours needs, far below the recursion limit.
MAX_JSON_DEPTH = 32

# A JSON string, so that brackets inside strings do not count. The closing quote is optional so
# that an unterminated string ends the scan instead of being retried from every later quote
# (linear time whatever the input; malformed JSON is json.loads's to refuse).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Each bracket as 1 + its step: an opening one 2, a closing one 0.
_AS_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class TooDeep(ValueError):
    """The JSON nests deeper than MAX_JSON_DEPTH."""


def _bracket_steps(text: str) -> bytes:
    """The brackets outside strings, in order, as 1 + step (2 opens, 0 closes)."""
    outside = _STRING.sub("", text).encode("ascii", "ignore")  # outside strings JSON is ASCII
    return outside.translate(_AS_STEPS, _NOT_BRACKETS)


def _deepest(steps: bytes) -> int:
    # The running sum of (1 + step) after i brackets is i + the depth there: take i back off.
    return max(map(operator.sub, accumulate(steps), count(1)), default=0)


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar), without parsing it.

    Done in C-speed steps (regex, translate, accumulate), linear in the text: a hostile
    megabyte costs tens of milliseconds at worst, about what parsing it would.
    """
    return _deepest(_bracket_steps(text))


def too_deep(text: str) -> bool:
    """Whether a JSON text nests deeper than MAX_JSON_DEPTH."""
    # Fewer opening brackets than the limit in all (strings included) cannot nest deeper.
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    steps = _bracket_steps(text)
    if b"\x02" * (MAX_JSON_DEPTH + 1) in steps:  # the usual attack, [[[[…, found at once
        return True
    return _deepest(steps) > MAX_JSON_DEPTH


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """json.loads that refuses nesting deeper than MAX_JSON_DEPTH with a ValueError (TooDeep)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    if too_deep(text):
        raise TooDeep(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, **kwargs)
    except RecursionError:  # belt and braces: the scan above already refused this
        raise TooDeep(f"nested deeper than {MAX_JSON_DEPTH} levels") from None


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser (same encoding handling, same strictness about NaN and Infinity) that
    answers 400 malformed_json to nesting deeper than MAX_JSON_DEPTH instead of a 500."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = get_encoding(parser_context or {})  # DRF's: text codecs only, else ParseError
        try:
            text = codecs.getreader(encoding)(stream).read()
            return loads(text, parse_constant=strict_constant if self.strict else None)
        except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError, TooDeep
            raise ParseError(f"JSON parse error - {exc}") from None
