"""`bastion.web.json_depth.loads`, the one reader of JSON from outside: a lone surrogate, escaped or
encoded, is invalid JSON (LoneSurrogate, a JSONDecodeError); everything else reads as `json.loads`."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.config_doc import read_document
from bastion.core.errors import BadRequest
from bastion.web.json_depth import LoneSurrogate, TooDeep, body_too_deep, loads
from bastion.web.rest.common import parse_json

REFUSED = {
    "value": b'{"a": "x\\ud800y"}',
    "low-alone": b'["\\udc00"]',
    "key": b'{"k\\uDBFF": 1}',
    "nested": b'{"a": [1, {"b": ["ok", "\\ud83d"]}]}',
    "high-then-high": b'"\\ud83d\\ud83d\\ude00"',
    "pair-reversed": b'"\\ude00\\ud83d"',
    "high-then-other-escape": b'"\\ud83d\\u0041"',
    "after-escaped-backslash": b'"\\\\\\ud800"',
    "utf8-encoded": b'"\xed\xa0\x80"',
    "utf8-encoded-pair": b'"\xed\xa0\xbd\xed\xb8\x80"',
    "utf16": '"\ud800"'.encode("utf-16", "surrogatepass"),
    "str": '"\ud800"',
    "str-escape": '"\\ud800"',
}


@pytest.mark.parametrize("body", REFUSED.values(), ids=REFUSED.keys())
def test_a_lone_surrogate_is_invalid_json(body: bytes | str) -> None:
    with pytest.raises(LoneSurrogate) as refused:
        loads(body)
    assert isinstance(refused.value, json.JSONDecodeError)
    assert "surrogate (\\ud" in refused.value.msg
    str(refused.value).encode()  # the message itself is text


KEPT = {
    "pair": (b'{"e": "\\ud83d\\ude00"}', {"e": "\U0001f600"}),
    "pair-upper": (b'"\\uD83D\\uDE00"', "\U0001f600"),
    "pair-as-key": (b'{"\\ud83d\\ude00": [1]}', {"\U0001f600": [1]}),
    "escaped-backslash": (b'"\\\\ud800"', "\\ud800"),
    "escaped-backslashes-then-pair": (b'"\\\\\\\\\\ud83d\\ude00"', "\\\\\U0001f600"),
    "other-escapes": (b'"caf\\u00e9 \\u4e2d \\"q\\" \\n"', 'caf\u00e9 \u4e2d "q" \n'),
    "raw-utf8": ('"caf\u00e9 \U0001f600"'.encode(), "caf\u00e9 \U0001f600"),
    "utf8-bom": (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),
    "utf16": ('{"a": "\U0001f600"}'.encode("utf-16"), {"a": "\U0001f600"}),
    "str": ('{"a": "caf\u00e9"}', {"a": "caf\u00e9"}),
}


@pytest.mark.parametrize(("body", "value"), KEPT.values(), ids=KEPT.keys())
def test_everything_else_reads_as_json_loads_reads_it(body: bytes | str, value: object) -> None:
    assert loads(body) == value == json.loads(body)


@pytest.mark.parametrize("body", [b'{"a": ', b"\xff", b'"\\ud80"', b"[" * 65 + b"]" * 65])
def test_other_bad_json_fails_as_before(body: bytes) -> None:
    with pytest.raises(ValueError) as failed:
        loads(body)
    assert not isinstance(failed.value, LoneSurrogate)
    if b"[" not in body:
        with pytest.raises(type(failed.value)):
            json.loads(body)
    else:
        assert isinstance(failed.value, TooDeep)


def test_the_rest_api_answers_a_lone_surrogate_as_invalid_json() -> None:
    with pytest.raises(BadRequest) as refused:
        parse_json(b'{"email": "a\\ud800@x.io"}')
    assert refused.value.detail == "the body is not valid JSON: a lone surrogate (\\ud800) is not text"


@given(st.lists(st.sampled_from(["a", "\\", "\ud83d", "\ude00", "\ud800", "\U0001f600", "\u00e9", '"']), max_size=12))
def test_a_surrogate_is_refused_exactly_when_json_loads_would_keep_one(pieces: list[str]) -> None:
    text = "".join(pieces)
    body = json.dumps({text: [text]}).encode()  # escapes every surrogate; a pair in `text` joins back
    kept = json.loads(body)
    ((key, (value,)),) = kept.items()
    unencodable = any(0xD800 <= ord(c) <= 0xDFFF for c in key + value)
    if unencodable:
        with pytest.raises(LoneSurrogate):
            loads(body)
    else:
        assert loads(body) == kept


def test_a_configuration_document_refuses_a_lone_surrogate_and_joins_a_pair() -> None:
    with pytest.raises(BadRequest, match=r"lone surrogate \(\\ud800\)"):
        read_document(b'servers:\n  - name: a\n    description: "x\\ud800"\n')
    # A JSON document (read as YAML) with an escaped pair: PyYAML reads its halves apart.
    doc = read_document(json.dumps({"servers": [{"name": "a", "description": "\U0001f600"}]}).encode())
    assert doc.servers[0].description == "\U0001f600"
    # YAML's !!set is a Python set (and !!omap a list of tuples): a surrogate inside is found too.
    with pytest.raises(BadRequest, match=r"lone surrogate \(\\ud800\)"):
        read_document(b'servers:\n  - name: a\n    tools: !!set {"x\\ud800": null}\n')
    doc = read_document(b'servers:\n  - name: a\n    tools: !!set {"x\\ud83d\\ude00": null}\n')
    assert doc.servers[0].tools == ("x\U0001f600",)


def test_a_body_cut_inside_a_string_of_escaped_quotes_is_measured_in_linear_time() -> None:
    # The audit middleware reads a large body's first 64 KiB: a JSON document sent as a string (an
    # inline OpenAPI document) is then cut inside a string full of escaped quotes. The pattern for a
    # string failed at the cut and was tried again from every escaped quote: seconds of CPU, on the
    # event loop, for one request.
    # Wherever the cut falls, even just after a backslash, the brackets are inside a string and do
    # not nest. (Sized so that the quadratic retry takes minutes: the suite's timeout ends it.)
    body = b'{"spec": "' + b'{\\"type\\": \\"array\\", \\"items\\": ' * 2000
    for cut in (body, body + b"\\", body + b'\\"', body[:-1]):
        assert body_too_deep(cut) is False, cut[-4:]
