"""State shared by every replica, in Redis: the change feed, revocations, rate limits, the leader lease."""
