"""Connectors to brokers and databases: direct (receiver-less) sources and exactly-once sinks.

* :mod:`dstreams.connectors.direct`: the shared core of every direct source. Each batch reads
  a range of offsets per broker partition, planned by the driver when the batch is generated
  and recorded in the batch's plan (so in the metadata checkpoint). It handles the rate limits,
  splitting ranges into tasks, lag, and committing offsets after the batch's output. Each broker
  supplies a small adapter.
* :mod:`dstreams.connectors.redis`: Redis Streams (``createDirectStream``), with the ``redis``
  package.
* :mod:`dstreams.connectors.kafka`: Kafka, with PySpark 2.x's ``KafkaUtils.createDirectStream``,
  on ``confluent-kafka``.
* :mod:`dstreams.connectors.postgres`: an exactly-once PostgreSQL sink (``psycopg`` 3, ``COPY``).

Each broker module imports its client package only when it is used. The packages are the
``redis``, ``kafka`` and ``postgres`` extras (``pip install 'dstreams[connectors]'`` for all).
"""

from __future__ import annotations

__all__: list[str] = []
