"""Everything the service keeps: one package, one key space, one outage policy.

- `keys`: every Redis key (prefix, the one digest of e-mail addresses);
- `redis`: the process's client and the outage policy (`StoreUnavailable`);
- `ttl_lru`: the bounded expiring map behind every in-memory store;
- one module per store, each with its Protocol, in-memory and Redis implementation:
  `outcomes`, `history`, `cache`, `rates`, `budgets`, `breaker_state`;
- `stores`: `StorageConfig` and `open_stores`, the one "Redis or in memory" decision.

Only this package imports `redis`; the rest of the service sees the Protocols.
"""
