"""Keep the worker alive when its Redis broker goes away while a task runs.

With kombu 5.7's Redis transport, losing the broker while a late-acknowledged task is running killed the worker
with `Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")`:

1. the consumer collects the lost connection (kombu Connection.collect): closing the channel stops at the broken
   BRPOP read, then the transport is detached from its connection (`transport.client = None`);
2. the consumer then closes the same connection again; this time the channel gets as far as restoring its unacked
   message (the running task's), which needs a new Redis client, whose parameters come from `transport.client`.

The AttributeError is not among the transport's connection errors, so neither kombu's close nor the consumer
ignores it. The same happens when the running task later acknowledges its message on the dead channel. Raising
a connection error there instead lets kombu and Celery do what they do for any other broker outage: ignore it on
close, reconnect with back-off, and leave the unacked message in Redis, to be delivered again after the
visibility timeout (the index tasks are idempotent, and the sweep re-queues their work sooner).
"""

from kombu.transport import redis as redis_transport
from redis.exceptions import ConnectionError as RedisConnectionError

_connparams = redis_transport.Channel._connparams


class BrokerConnectionClosed(RedisConnectionError):
    """A channel of a broker connection that was already closed after a connection loss was used again."""


def _connparams_of_open_connection(self, asynchronous=False):
    if self.connection.client is None:
        raise BrokerConnectionClosed("the broker connection was closed after a connection loss")
    return _connparams(self, asynchronous=asynchronous)


def keep_worker_alive_on_connection_loss() -> None:
    """Install the guard (idempotent)."""
    redis_transport.Channel._connparams = _connparams_of_open_connection
