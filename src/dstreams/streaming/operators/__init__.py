"""DStream operators, one small module per family.

* ``mapped``: per-batch transformations (``transform``, ``transformWith``,
  ``StreamingContext.transform``, ``StreamingContext.union``).
* ``windowed``: ``window`` and incremental window reductions.
* ``stateful``: ``updateStateByKey``.
* ``output``: ``foreachRDD``, ``pprint``, ``saveAsTextFiles``.
* ``input``: input streams (queue, receiver-backed, file-backed).
"""

__all__: list[str] = []
