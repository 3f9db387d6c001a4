"""strict_loads: JSON from another party, parsed as json.loads parses it, refused (NotUnicode, a
ValueError worded for the party) when its text holds a lone surrogate, escaped or UTF-8-encoded."""

from __future__ import annotations

import json

import pytest

from bastion.core.surrogates import NotUnicode, strict_loads

REFUSED = [
    '{"name": "\\ud800"}',  # a lone high surrogate's escape
    '{"name": "x\\uDC00y"}',  # a lone low one, in capitals
    '{"\\ud83d": 1}',  # in a key
    '[1, ["\\ude00\\ud83d"]]',  # a pair in the wrong order is two lone ones
    '{"name": "\\\\\\ud800"}',  # an escaped backslash, then an escape
]
ACCEPTED = [
    '{"name": "plain"}',
    '{"name": "\\ud83d\\ude00"}',  # a valid pair: one character
    '{"name": "\\\\ud800"}',  # an escaped backslash, then text: no escape
    '{"name": "caf\\u00e9 \\n"}',
    '{"name": "café 😀"}',
]


@pytest.mark.parametrize("text", REFUSED)
@pytest.mark.parametrize("kind", [str, bytes, bytearray])
def test_an_escaped_lone_surrogate_is_refused(text: str, kind: type) -> None:
    raw = text if kind is str else kind(text.encode())
    with pytest.raises(NotUnicode) as refused:
        strict_loads(raw)
    assert isinstance(refused.value, ValueError) and not isinstance(refused.value, json.JSONDecodeError)
    assert "\\u" in str(refused.value) and refused.value.value == json.loads(text)


@pytest.mark.parametrize("text", ACCEPTED)
@pytest.mark.parametrize("kind", [str, bytes, bytearray])
def test_valid_text_is_parsed_as_json_loads_parses_it(text: str, kind: type) -> None:
    raw = text if kind is str else kind(text.encode())
    assert strict_loads(raw) == json.loads(text)


def test_a_utf8_encoded_surrogate_is_refused() -> None:
    raw = b'{"name": "\xed\xa0\x80"}'  # json.loads decodes bytes with surrogatepass: U+D800
    assert json.loads(raw) == {"name": "\ud800"}
    with pytest.raises(NotUnicode) as refused:
        strict_loads(raw)
    assert refused.value.char == "\ud800"


def test_a_surrogate_in_a_str_is_refused() -> None:
    with pytest.raises(NotUnicode):
        strict_loads('{"name": "\udfff"}')


def test_the_refusal_names_the_party_and_never_carries_the_surrogate() -> None:
    with pytest.raises(NotUnicode) as refused:
        strict_loads(b'["\\ud800"]', "the identity provider's token endpoint", "answered with")
    assert str(refused.value) == (
        "the identity provider's token endpoint answered with text that is not valid Unicode (a lone surrogate \\ud800)"
    )
    with pytest.raises(NotUnicode, match=r"^the JSON holds text"):
        strict_loads('["\\ud800"]')


def test_invalid_json_is_json_loads_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        strict_loads(b'{"name": ')
    with pytest.raises(UnicodeDecodeError):
        strict_loads(b'{"name": "\xff"}')


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16", "utf-32-le", "utf-32"])
@pytest.mark.parametrize("text", ['{"name": "\\ud800"}', '{"name": "\ud800"}'])
def test_a_lone_surrogate_in_utf16_or_utf32_is_refused(encoding: str, text: str) -> None:
    raw = text.encode(encoding, "surrogatepass")  # json.loads reads these encodings too
    assert json.loads(raw) == {"name": "\ud800"}
    with pytest.raises(NotUnicode):
        strict_loads(raw)
    assert strict_loads('{"name": "\\ud83d\\ude00"}'.encode(encoding)) == {"name": "😀"}
