"""Everything the service keeps: one package, one key space, one outage policy.

`keys` builds every Redis key, `redis` holds the client and the outage policy
(`StoreUnavailable`), `ttl_lru` is the bounded expiring map behind every in-memory
store.
"""
