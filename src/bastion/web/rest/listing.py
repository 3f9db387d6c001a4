"""The paging parameters of REST listings, read one way everywhere: a value a listing cannot take is
a 400 naming the parameter, never clamped, read as another number or ignored in silence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, overload

from starlette.requests import Request

from bastion.core.errors import BadRequest
from bastion.core.values import small_int

MAX_NUMBER = 2**63 - 1
"""The default upper bound of `count` (a 64-bit integer); a list whose positions are narrower (the
audit's 32-bit ids) passes its own."""
PAGING = ("limit", "offset", "cursor", "after")
MAX_PAGE = 10000
"""The largest `limit` of a list paged by offset."""
T = TypeVar("T")


@overload
def count(request: Request, name: str, default: int, low: int, high: int = MAX_NUMBER) -> int: ...
@overload
def count(request: Request, name: str, default: None, low: int, high: int = MAX_NUMBER) -> int | None: ...
def count(request: Request, name: str, default: int | None, low: int, high: int = MAX_NUMBER) -> int | None:
    """A whole number from `low` to `high` (ASCII digits only), or `default` when absent or empty."""
    text = request.query_params.get(name)
    if not text:
        return default
    number = small_int(text)
    if number is None or not low <= number <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return number


def only_paging(request: Request, *takes: str) -> None:
    """Refuse the paging parameters a listing does not take (none, for one that returns every item):
    ignored, a client asking for a page would take the whole list, or another page, for the one it asked."""
    for name in PAGING:
        if name not in takes and request.query_params.get(name):
            how = f"it pages with {' and '.join(takes)}" if takes else "it returns every item at once"
            raise BadRequest(f"{name} is not a parameter of this list: {how}")


def window(request: Request) -> tuple[int, int | None]:
    """`offset` (from 0) and `limit` (1 to MAX_PAGE, None for every item from the offset), the paging
    of every list that holds its items at once; any other paging parameter is refused."""
    only_paging(request, "offset", "limit")
    return count(request, "offset", 0, 0), count(request, "limit", None, 1, MAX_PAGE)


def paged(request: Request, items: Sequence[T], key: str = "items") -> dict[str, Any]:
    """The page of `items` the request's `offset` and `limit` ask for, under `key`, with `total`
    counting every item (a client pages on until offset + its page's length reaches it)."""
    offset, limit = window(request)
    return {key: list(items[offset : None if limit is None else offset + limit]), "total": len(items)}
