"""One request in, one reply out: the business logic of answering a request.

Kafka knows nothing of this package and this package knows nothing of Kafka: it
receives a decoded request and returns the reply bytes to publish. Every failure
becomes an error reply here; only cancellation escapes.

A chat request goes down a chain of small stages, each wrapping the next
(`build.build_processor` assembles it):

    dispatch       rejected → error reply; forget → acknowledgement; chat → ↓
    replay         a recorded outcome is the reply; else ↓, and its reply is recorded
    replying       the answer → reply bytes; any failure → error reply bytes (+ metrics)
    conversations  stored history loaded before ↓, the new turn stored after
    prompt         system prompt (+ JSON instruction), context fitted to the model
                   (or its larger-context fallback), the backend call
    caching        a cached answer is the answer; else ↓, and its answer is cached
    checked        a JSON answer checked (and repaired by re-asking ↓)
    admitted       rate limits and budget reservation (waiting, paused, while the
                   global budget is spent) before ↓, settlement after
    backend_call   the backend (waiting, paused, while its breaker is open)
"""
