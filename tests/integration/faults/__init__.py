"""The fault suite (issue 8): the whole service under crashes, rebalances, a stalled
broker, a Redis outage, a chaotic backend, hostile input and poison messages."""
