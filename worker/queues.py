"""The Celery queues, for the worker's app (worker.celery) and Flower's (worker.flower), which loads no Django.

`index` carries per-area builds (many, short); `maintenance` carries Redis rebuilds and the sweep, so a long rebuild
never waits behind a burst of edits, nor the other way round; `webhooks` carries calls to partners' URLs (seconds
each, at their receivers' pace), so slow receivers never hold up the sweep or the rebuild. The Procfile's worker
consumes all three (-Q)."""

QUEUES = ("index", "maintenance", "webhooks")
