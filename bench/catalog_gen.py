"""A generated tool catalog for the catalog benchmarks: N upstreams of M tools with plausible names,
descriptions and input schemas, and a known share of cross-upstream near-duplicates."""

from __future__ import annotations

import random
from typing import Any

from bastion.core.models import CatalogItem

VERBS = ["get", "list", "create", "update", "delete", "search", "read", "write", "sync", "export", "import",
         "archive", "restore", "validate", "compute", "render", "translate", "schedule", "cancel", "approve"]
NOUNS = ["issue", "pull_request", "file", "directory", "user", "team", "invoice", "payment", "order", "ticket",
         "message", "channel", "calendar_event", "document", "spreadsheet", "dashboard", "metric", "alert",
         "deployment", "container", "bucket", "record", "contact", "lead", "campaign", "report", "build",
         "pipeline", "secret", "certificate", "domain", "query", "table", "index", "snapshot", "backup",
         "webhook", "comment", "label", "milestone", "release", "branch", "commit", "tag", "asset", "image",
         "video", "playlist", "transcript", "note", "task", "project", "sprint", "epic", "workflow"]
QUALIFIERS = ["", "", "", "by_id", "batch", "async", "v2", "details", "summary", "history", "status"]
ARGS = [("id", "string"), ("name", "string"), ("path", "string"), ("limit", "integer"), ("cursor", "string"),
        ("query", "string"), ("owner", "string"), ("repo", "string"), ("content", "string"), ("force", "boolean"),
        ("tags", "array"), ("since", "string"), ("until", "string"), ("page", "integer"), ("format", "string")]
DOMAINS = ["GitHub", "Jira", "Slack", "Stripe", "Google Drive", "Postgres", "Kubernetes", "S3", "Salesforce", "Notion"]


def _tool(rng: random.Random, upstream: str, domain: str, n: int) -> dict[str, Any]:
    verb, noun, qual = rng.choice(VERBS), rng.choice(NOUNS), rng.choice(QUALIFIERS)
    name = "_".join(p for p in (verb, noun, qual, str(n)) if p)
    args = rng.sample(ARGS, rng.randint(1, 5))
    words = noun.replace("_", " ")
    description = (
        f"{verb.capitalize()} a {words} in {domain}{' (' + qual.replace('_', ' ') + ')' if qual else ''}. "
        f"Use it to {rng.choice(VERBS)} {rng.choice(NOUNS).replace('_', ' ')} data for automation number {n}."
    )
    schema = {"type": "object", "properties": {a: {"type": t} for a, t in args}, "required": [args[0][0]]}
    return {"name": name, "description": description, "inputSchema": schema}


def catalog(upstreams: int = 10, per_upstream: int = 1000, duplicate_share: float = 0.01, seed: int = 7) -> list[CatalogItem]:
    rng = random.Random(seed)
    items: list[CatalogItem] = []
    for u in range(upstreams):
        upstream = f"up{u}"
        for n in range(per_upstream):
            d = _tool(rng, upstream, DOMAINS[u % len(DOMAINS)], u * per_upstream + n)
            items.append(CatalogItem(upstream=upstream, kind="tool", key=d["name"], gateway_name=f"{upstream}__{d['name']}", definition=d))
    # Near-duplicates: another upstream re-implements an existing tool with a reworded name and description.
    for i in rng.sample(range(len(items)), int(len(items) * duplicate_share)):
        original = items[i]
        target = f"up{(int(original.upstream[2:]) + 1) % upstreams}"
        d = dict(original.definition)
        d["name"] = d["name"].replace("get_", "fetch_").replace("delete_", "remove_") + "_copy"
        d["description"] = "Tool that will " + d["description"][0].lower() + d["description"][1:]
        items.append(CatalogItem(upstream=target, kind="tool", key=d["name"], gateway_name=f"{target}__{d['name']}", definition=d))
    return items
