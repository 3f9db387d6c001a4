"""`bastion upstreams add --oauth-*` builds the auth object (against the CLI tests' stub gateway)."""

from __future__ import annotations

from tests.cli.test_cli import Stub, run, stub  # noqa: F401 - `stub` is a fixture


def test_upstreams_add_with_oauth_client_credentials(stub: Stub) -> None:
    args = ["upstreams", "add", "api", "--transport", "streamable-http", "--url", "https://up/mcp"]
    oauth = ["--oauth-token-url", "https://idp/token", "--oauth-client-id", "bastion", "--oauth-scope", "mcp"]
    result = run(stub, *args, *oauth, "--oauth-client-secret", "cs-1", "--json")
    assert result.exit_code == 0, result.stderr
    assert stub.last()["json"]["auth"] == {
        "type": "oauth_client_credentials",
        "token_url": "https://idp/token",
        "client_id": "bastion",
        "client_secret": "cs-1",
        "scope": "mcp",
    }
    incomplete = run(stub, *args, *oauth)
    assert incomplete.exit_code == 2 and "--oauth-client-secret" in incomplete.stderr
