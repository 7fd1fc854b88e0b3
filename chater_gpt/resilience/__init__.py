"""What keeps chater-gpt from outrunning its budget or its backend.

One module per job: `retry` (the one retry loop), `breaker` (the circuit breaker,
shared across replicas through Redis), `rate_limit` (GCRA request limits, shared
through Redis or per process), `guards` (the backend wrappers: retries, breaker,
rate-limit wait and per-attempt timeout stacked around one backend; the only module
here that imports `backends.base`), `budget` (the daily budgets, in tokens and in
money), `prices` (the `Prices` protocol that prices a call for the money budgets),
`policy` (per-tenant policy file) and `admission` (the per-request checks the processor
makes before calling the backend).
"""
