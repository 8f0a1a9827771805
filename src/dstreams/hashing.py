"""portable_hash: a key hash that is the same in every process and every run.

Partitioning sends key ``k`` to partition ``portable_hash(k) % n``, so the hash must not depend
on ``PYTHONHASHSEED``. Python's own ``hash`` is already stable for int, float, bool and (in our
use) is replaced for the seeded types:

* ``str`` and ``bytes``: CRC-32 of the (UTF-8) bytes, widened so short keys still spread;
* ``None``: 0 (CPython < 3.12 hashes None by address);
* ``tuple``: PySpark's tuple combination of the element hashes, so int and tuple-of-int keys land
  where PySpark puts them;
* ``frozenset``: an order-independent combination of the element hashes.

Other types fall back to ``hash(x)``, as PySpark does; such keys must define a deterministic
``__hash__`` to be partitioned consistently across processes.
"""

from __future__ import annotations

import sys
import zlib
from typing import Any

__all__ = ["portable_hash"]

_MASK = sys.maxsize
_crc32 = zlib.crc32


def _str_hash(b: bytes) -> int:
    # crc32 is fast (C) and seed-free; mixing the length in spreads equal-crc collisions.
    return (_crc32(b) * 0x9E3779B1 + len(b)) & 0x7FFFFFFFFFFF


def portable_hash(x: Any) -> int:
    """A hash of ``x`` that is identical across processes, runs and hash seeds.

    Example:
        >>> portable_hash(("a", 1)) == portable_hash(("a", 1))
        True
        >>> portable_hash(None)
        0
    """
    t = type(x)
    if t is str:
        return _str_hash(x.encode("utf-8", "surrogatepass"))
    if t is int or t is float or t is bool:
        return hash(x)
    if x is None:
        return 0
    if t is tuple:
        h = 0x345678
        for i in x:
            h ^= portable_hash(i)
            h *= 1000003
            h &= _MASK
        h ^= len(x)
        if h == -1:
            h = -2
        return int(h)
    if t is bytes or t is bytearray or t is memoryview:
        return _str_hash(bytes(x))
    if t is frozenset:
        h = 0
        for i in x:
            e = portable_hash(i)
            h ^= ((e ^ (e << 16) ^ 89869747) * 3644798167) & _MASK
        return (h * 69069 + 907133923 + len(x)) & _MASK
    if isinstance(x, str):
        return _str_hash(str(x).encode("utf-8", "surrogatepass"))
    if isinstance(x, tuple):
        return portable_hash(tuple(x))
    return hash(x)
