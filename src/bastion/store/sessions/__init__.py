"""Shared state of 2025-11-25 client sessions: sealed records and resumable event streams,
in process (one replica) or in Redis (any replica serves any session)."""
