"""The bottom layer: what every app uses and no app owns (errors, metrics, Redis connections and their circuit
breaker, client addresses and networks, optimistic concurrency, pagination, the Celery task base). It imports no
app of the project; `make test` checks that (import-linter, .importlinter)."""
