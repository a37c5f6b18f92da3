"""Exact JSON substrings: the text of each element of an array, the span of an object member.

Parsers keep the raw text a row was parsed from. When one response holds many rows (a REST
array of 1000 klines, a ``!markPrice@arr`` push of every symbol) each row keeps the text of
*its own* element rather than a copy of the whole frame. These helpers find those substrings
by decoding element by element with :meth:`json.JSONDecoder.raw_decode`, so the positions are
exactly the decoder's: any whitespace, nesting or string escapes are handled as ``json.loads``
would handle them.

Pure functions; malformed input raises :class:`~polyrl.errors.ParseError` naming the position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from polyrl.errors import ParseError

_DECODER = json.JSONDecoder()
# JSON's four whitespace characters (RFC 8259 §2); anything else between tokens is an error.
_WS = re.compile(r"[ \t\n\r]*")
# A stub gap: typeshed's json/decoder.pyi leaves out scanstring, which the runtime module
# defines (the C scanner, else its pure-Python twin). Annotated so its callers stay typed.
_scanstring: Callable[[str, int], tuple[str, int]]
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


def _skip_ws(text: str, i: int) -> int:
    m = _WS.match(text, i)
    return m.end() if m is not None else i


def _value_at(text: str, i: int, what: str) -> tuple[Any, int]:
    """Decode the JSON value starting exactly at ``i``; return it and the index after it."""
    try:
        return _DECODER.raw_decode(text, i)
    except json.JSONDecodeError as e:
        if e.pos >= len(text) or e.msg.startswith("Unterminated string"):
            raise ParseError(f"JSON {what} truncated at char {e.pos}") from None
        raise ParseError(f"malformed JSON {what} at char {e.pos}: {e.msg}") from None
    except RecursionError:
        raise ParseError(f"JSON {what} at char {i} is nested too deeply") from None


def iter_json_array(text: str, start: int = 0, end: int | None = None) -> list[tuple[Any, str]]:
    """The elements of the JSON array in ``text[start:end]``, each as ``(value, exact_text)``.

    ``exact_text`` is the element's own substring (no surrounding whitespace or commas), so
    ``json.loads(exact_text) == value``. Whitespace around the array is allowed; anything else
    in ``text[start:end]`` outside it, a missing or trailing comma, or a bad element is a
    ParseError. Each element is decoded once, so callers need no separate ``json.loads``.
    """
    stop = len(text) if end is None else end
    i = _skip_ws(text, start)
    if i >= stop or text[i] != "[":
        got = repr(text[i : i + 20]) if i < stop else "end of text"
        raise ParseError(f"expected a JSON array at char {i}, got {got}")
    i = _skip_ws(text, i + 1)
    items: list[tuple[Any, str]] = []
    if i < stop and text[i] == "]":
        i += 1
    else:
        while True:
            if i >= stop:
                raise ParseError(f"JSON array truncated at char {i} (after {len(items)} elements)")
            value, j = _value_at(text, i, f"array element {len(items)}")
            if j > stop:
                raise ParseError(f"JSON array element {len(items)} runs past char {stop}")
            items.append((value, text[i:j]))
            i = _skip_ws(text, j)
            c = text[i] if i < stop else ""
            if c == ",":
                i = _skip_ws(text, i + 1)
            elif c == "]":
                i += 1
                break
            elif c == "":
                raise ParseError(f"JSON array truncated at char {i} (after {len(items)} elements)")
            else:
                raise ParseError(
                    f"malformed JSON array: expected ',' or ']' at char {i}, got {c!r}"
                )
    i = _skip_ws(text, i)
    if i < stop:
        raise ParseError(f"extra data after the JSON array at char {i}")
    return items


def split_json_array(text: str) -> list[str]:
    """The exact text of each element of the JSON array ``text`` (see :func:`iter_json_array`).

    >>> split_json_array('[ [1, "a"], {"b": [2]} ,3]')
    ['[1, "a"]', '{"b": [2]}', '3']
    """
    return [raw for _, raw in iter_json_array(text)]


def member_span(text: str, key: str) -> tuple[int, int] | None:
    """``(start, end)`` of the value of top-level member ``key`` of the JSON object ``text``.

    ``text[start:end]`` is the member's exact value text. ``None`` when the object has no such
    member. As with ``json.loads``, a repeated key resolves to its last occurrence. Raises
    ParseError when ``text`` is not a well-formed JSON object.
    """
    n = len(text)
    i = _skip_ws(text, 0)
    if i >= n or text[i] != "{":
        raise ParseError(f"expected a JSON object at char {i}")
    i = _skip_ws(text, i + 1)
    found: tuple[int, int] | None = None
    if i < n and text[i] == "}":
        i += 1
    else:
        while True:
            if i >= n or text[i] != '"':
                raise ParseError(f"malformed JSON object: expected a key at char {i}")
            try:
                name, i = _scanstring(text, i + 1)
            except json.JSONDecodeError as e:
                raise ParseError(f"malformed JSON object key at char {e.pos}: {e.msg}") from None
            i = _skip_ws(text, i)
            if i >= n or text[i] != ":":
                raise ParseError(f"malformed JSON object: expected ':' at char {i}")
            i = _skip_ws(text, i + 1)
            _, j = _value_at(text, i, f"value of member {name!r}")
            if name == key:
                found = (i, j)
            i = _skip_ws(text, j)
            c = text[i] if i < n else ""
            if c == ",":
                i = _skip_ws(text, i + 1)
            elif c == "}":
                i += 1
                break
            else:
                raise ParseError(f"malformed JSON object: expected ',' or '}}' at char {i}")
    if _skip_ws(text, i) < n:
        raise ParseError(f"extra data after the JSON object at char {i}")
    return found
