"""Telemetry adapters: metrics, structured logs, the audit log and usage figures."""
