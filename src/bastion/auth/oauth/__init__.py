"""Bastion as an OAuth 2.1 authorization server for MCP clients (no external identity provider needed)."""
