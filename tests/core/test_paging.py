"""Gateway-minted cursors: every entry exactly once, stable across changes, foreign cursors refused."""

from __future__ import annotations

import pytest

from bastion.core.errors import BadRequest
from bastion.core.paging import decode_cursor, encode_cursor, page


def _items(keys: list[str]) -> list[dict[str, str]]:
    return [{"name": k} for k in keys]


def test_pages_cover_every_entry_once_in_order() -> None:
    keys = [f"t{i:02d}" for i in range(10)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        chunk, cursor = page("tool", keys, _items(keys), cursor, 3)
        seen += [c["name"] for c in chunk]
        if cursor is None:
            break
    assert seen == keys


def test_a_list_that_fits_one_page_has_no_cursor() -> None:
    chunk, cursor = page("tool", ["a", "b"], _items(["a", "b"]), None, 2)
    assert [c["name"] for c in chunk] == ["a", "b"] and cursor is None


def test_a_removed_entry_does_not_shift_the_next_page() -> None:
    keys = ["a", "b", "c", "d", "e"]
    _, cursor = page("tool", keys, _items(keys), None, 2)
    remaining = ["a", "c", "d", "e"]  # "b" removed between pages
    chunk, _ = page("tool", remaining, _items(remaining), cursor, 2)
    assert [c["name"] for c in chunk] == ["c", "d"]


@pytest.mark.parametrize("cursor", ["", "%%%", "not-base64!", 7, encode_cursor("prompt", "a")])
def test_foreign_or_malformed_cursors_are_refused(cursor: object) -> None:
    with pytest.raises(BadRequest):
        page("tool", ["a"], _items(["a"]), cursor, 1)


def test_cursor_round_trips_any_key() -> None:
    for key in ["plain", "file:///a b/ü?x=1", "x" * 300]:
        assert decode_cursor(encode_cursor("resource", key), "resource") == key
