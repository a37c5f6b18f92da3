"""Exact JSON substrings: split_json_array, iter_json_array, member_span."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyrl.errors import ParseError
from polyrl.sources.jsontext import iter_json_array, member_span, split_json_array


@pytest.mark.parametrize(
    "text,parts",
    [
        ("[]", []),
        (" [ \n ] \n", []),
        ("[1]", ["1"]),
        ('[1,"a",null,true,-2.5e3]', ["1", '"a"', "null", "true", "-2.5e3"]),
        (
            '\n[ [1, "a"] ,\t{"b": [2, {"c": []}]}\r\n, 3 ]\n',
            ['[1, "a"]', '{"b": [2, {"c": []}]}', "3"],
        ),
        # brackets, commas and escaped quotes inside strings are not structure
        ('["],[", "a\\"]b", {"k,": "}"}]', ['"],["', '"a\\"]b"', '{"k,": "}"}']),
        ("[[[[]]], [[1,2],[3]]]", ["[[[]]]", "[[1,2],[3]]"]),
        ('["\\u00e9\\n", "é"]', ['"\\u00e9\\n"', '"é"']),
    ],
)
def test_split_json_array(text: str, parts: list[str]) -> None:
    assert split_json_array(text) == parts
    assert [json.loads(p) for p in parts] == json.loads(text)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "expected a JSON array"),
        ("   ", "expected a JSON array"),
        ('{"a":1}', "expected a JSON array"),
        ("42", "expected a JSON array"),
        ("[", "truncated"),
        ("[1,", "truncated"),
        ('[1, "ab', "truncated"),
        ("[1 2]", "expected ',' or ']'"),
        ("[1,]", "element 1"),
        ("[,1]", "element 0"),
        ("[1]]", "extra data"),
        ("[1] x", "extra data"),
        ("[01]", "expected ',' or ']'"),
        ("[nul]", "element 0"),
    ],
)
def test_split_json_array_malformed(text: str, needle: str) -> None:
    with pytest.raises(ParseError) as info:
        split_json_array(text)
    assert needle in str(info.value)


def test_iter_json_array_values_and_window() -> None:
    text = '{"stream":"x","data":[{"a":1}, [2]]}'
    start = text.index("[")
    end = len(text) - 1
    assert iter_json_array(text, start, end) == [({"a": 1}, '{"a":1}'), ([2], "[2]")]
    # an element may not run past the window's end
    with pytest.raises(ParseError):
        iter_json_array("[1, 22]", 0, 5)


def test_member_span() -> None:
    text = ' {"stream": "a@b", "inner": {"data": 0}, "data" : [1, {"x": "]"}] } '
    start, end = member_span(text, "data")  # type: ignore[misc]
    assert text[start:end] == '[1, {"x": "]"}]'
    assert member_span(text, "missing") is None
    assert member_span("{}", "data") is None
    # a repeated key resolves to the last occurrence, as json.loads does
    dup = '{"data": 1, "data": [2]}'
    s, e = member_span(dup, "data")  # type: ignore[misc]
    assert dup[s:e] == "[2]" and json.loads(dup)["data"] == [2]
    # escaped key names are compared decoded
    esc = '{"d\\u0061ta": 5}'
    s, e = member_span(esc, "data")  # type: ignore[misc]
    assert esc[s:e] == "5"


@pytest.mark.parametrize(
    "text", ["", "[]", '{"a" 1}', '{"a":1,}', '{"a":1', "{a:1}", '{"a":1} x', '{"a":[1}']
)
def test_member_span_malformed(text: str) -> None:
    with pytest.raises(ParseError):
        member_span(text, "a")


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=20,
)


@given(
    items=st.lists(_json, max_size=8),
    indent=st.sampled_from([None, 0, 2]),
    compact=st.booleans(),
    ascii_=st.booleans(),
)
def test_split_round_trips_any_array(
    items: list, indent: int | None, compact: bool, ascii_: bool
) -> None:
    seps = (",", ":") if compact else (", ", ": ")
    text = json.dumps(items, indent=indent, separators=seps, ensure_ascii=ascii_)
    parts = split_json_array(text)
    assert [json.loads(p) for p in parts] == items
    # parts are disjoint, in order, and exactly substrings of the text
    pos = 0
    for p in parts:
        i = text.index(p, pos)
        assert text[i : i + len(p)] == p and p == p.strip()
        pos = i + len(p)
