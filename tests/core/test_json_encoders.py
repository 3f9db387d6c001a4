import json
from datetime import UTC, datetime

import pytest

from bastion.core.json_encoders import json_encoder

VALUES = [
    {"b": 1, "a": [1.5, -0.0, 1e-7, 1e16, 2**70, True, False, None], "é": "naïve \"quoted\" \\ \n\t\x01 \u2028 😀"},
    [{"z": {"y": {"x": []}}}, {}, "", 0, -1, 0.1 + 0.2],
    "just a string with \x7f and ✓",
    12.5,
    None,
    {"when": datetime(2026, 12, 6, tzinfo=UTC)},
]


@pytest.mark.parametrize("options", [
    {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False, "default": str},
    {"separators": (",", ":"), "ensure_ascii": False, "default": str},
    {"default": str, "ensure_ascii": False},
    {"default": str},
])
def test_encodes_as_the_json_module_does(options: dict) -> None:
    encode = json_encoder(**options)
    for value in VALUES:
        assert encode(value) == json.JSONEncoder(**options).encode(value)


def test_a_value_it_cannot_encode_raises_as_json_does() -> None:
    encode = json_encoder()
    with pytest.raises(TypeError):
        encode({"x": object()})
    assert encode({"x": 1}) == '{"x": 1}'  # and the encoder still works after the failure
