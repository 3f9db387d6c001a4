"""YAML aliases that expand a small document to gigabytes ("billion laughs") are refused where Bastion
reads YAML: an OpenAPI document given inline or fetched, and a configuration document. yaml.safe_load
shares each alias, so loading is quick; it is walking or serialising the value that would not end."""

from __future__ import annotations

import pytest

from bastion.core.config_doc import read_document
from bastion.core.errors import BadRequest, UnusableDocument
from bastion.core.yaml_text import AliasBomb, load_yaml
from bastion.upstream.openapi import parse_document


def _bomb(head: str, levels: int = 9) -> str:
    lines = [head, "x-bomb:", '  l0: &l0 ["aaaaaaaaaa", "aaaaaaaaaa", "aaaaaaaaaa", "aaaaaaaaaa", "aaaaaaaaaa"]']
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


OPENAPI_HEAD = 'openapi: "3.0.0"\ninfo: {title: x, version: "1"}\npaths: {}'


def test_an_alias_bomb_is_refused() -> None:
    with pytest.raises(AliasBomb):
        load_yaml(_bomb(OPENAPI_HEAD))


def test_an_openapi_document_with_an_alias_bomb_is_refused() -> None:
    # Unusable (422) where it is given; a refresh of a fetched one makes it the upstream's fault (502).
    with pytest.raises(UnusableDocument, match="aliases"):
        parse_document(_bomb(OPENAPI_HEAD), "the document")


def test_a_configuration_with_an_alias_bomb_is_refused() -> None:
    with pytest.raises(BadRequest, match="aliases"):
        read_document(_bomb("version: 1"))


def test_ordinary_reuse_of_an_anchor_is_read() -> None:
    text = "ok: &ok {description: fine}\nresponses: {'200': *ok, '201': *ok, '404': *ok}\n"
    assert load_yaml(text)["responses"]["404"] == {"description": "fine"}


def test_one_long_string_aliased_many_times_is_refused() -> None:
    # ~1 MB once, a description in 1,000 operations: a gigabyte of tool definitions once expanded.
    ops = "\n".join(f"  /p{i}: {{get: {{description: *d, responses: {{}}}}}}" for i in range(1000))
    text = f'{OPENAPI_HEAD.replace("paths: {{}}", "")}\nx-d: &d "{"z" * 1_000_000}"\npaths:\n{ops}\n'
    with pytest.raises(AliasBomb):
        load_yaml(text)
    assert load_yaml(text.replace("*d", '"short"'))["paths"]["/p999"]["get"]["description"] == "short"


def test_a_long_string_used_a_few_times_is_read() -> None:
    text = f'x-d: &d "{"z" * 100_000}"\na: *d\nb: *d\nc: *d\n'
    assert len(load_yaml(text)["c"]) == 100_000
