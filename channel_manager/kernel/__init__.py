"""The shared kernel: what every app uses and no app owns (problem+json and domain errors, API
helpers, logs and request ids, core metrics and middleware, Idempotency-Key, admin helpers,
partners, API keys and authentication). It imports no app and knows nothing of orders."""
