"""Helpers shared by the tests of every app (import them; fixtures live in conftest.py files):

- `testing.geo`: GeoJSON builders (squares, polygons, features);
- `testing.areas`: random valid areas and points around them, for property tests;
- `testing.index`: what the index holds (Redis records, cell rows) and the lookup's answer as ids;
- `testing.redis`: counting the round trips this process sends to Redis;
- `testing.net`: ports that refuse connections, servers that accept and never answer;
- `testing.feed`: waiting until the change feed lists what was just committed;
- `testing.clock`: a wall clock the rate limits' windows can be pinned to;
- `testing.worker`: a real Celery worker process on the test broker and database.
"""
