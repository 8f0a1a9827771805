"""Source RDDs (parallelized collections, text and pickle files) and file output.

Every path goes through fsspec, so any URL fsspec understands works (local paths, ``file://``,
``s3://``, ``memory://`` within one process...). Text files are split Hadoop-style into byte
ranges: a split owns the lines that *start* inside it, so no line is lost or read twice.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dstreams.core.rdd import RDD

if TYPE_CHECKING:
    from dstreams.core.context import Context
    from dstreams.scheduler.task import TaskContext

__all__ = [
    "ParallelCollectionRDD",
    "TextFileRDD",
    "WholeTextFilesRDD",
    "BinaryRecordsRDD",
    "PickleFileRDD",
    "slice_like_pyspark",
    "save_as_text_file",
    "save_as_pickle_file",
    "expand_input_paths",
]

_CHUNK = 4 << 20
_BLOCK_SIZE = 32 << 20


def slice_like_pyspark(data: list[Any], num_slices: int) -> list[list[Any]]:
    """Cut ``data`` into partitions exactly as ``SparkContext.parallelize`` does.

    PySpark writes the list in batches of ``max(1, min(len // n, 1024))`` records and the JVM
    slices the *batches* at ``i * nbatches // n``; matching that keeps ``glom()`` identical.
    """
    n = len(data)
    batch = max(1, min(n // num_slices, 1024))
    batches = [data[i : i + batch] for i in range(0, n, batch)]
    nb = len(batches)
    out = []
    for i in range(num_slices):
        lo, hi = i * nb // num_slices, (i + 1) * nb // num_slices
        part: list[Any] = []
        for b in batches[lo:hi]:
            part.extend(b)
        out.append(part)
    return out


class ParallelCollectionRDD(RDD[Any]):
    """Partitions held by the driver (parallelize, queue streams, received blocks).

    The data does not travel with the stage's closure: the scheduler attaches each partition's
    records to the task that computes it, so a worker receives only its own partitions.
    """

    ships_partition_data = True

    def __init__(self, ctx: Context, slices: list[Any]) -> None:
        super().__init__(ctx, [], len(slices))
        self._slices: list[Any] | None = slices

    def partition_data(self, split: int) -> Any:
        assert self._slices is not None, "partition data is only available on the driver"
        return self._slices[split]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_slices"] = None
        return state

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        if self._slices is not None:  # computed where the data lives
            return iter(self._slices[split])
        return iter(tctx.spec.partition_data[(self._id, split)])


def expand_input_paths(path: str) -> tuple[Any, list[str]]:
    """Resolve a path, a directory, a comma-separated list or a glob to files (fsspec)."""
    import fsspec  # imported on use: workers that never read files skip it

    files: list[str] = []
    fs = None
    for p in str(path).split(","):
        fs, _, paths = fsspec.get_fs_token_paths(p.strip())
        if not paths:
            raise FileNotFoundError(f"Input path does not exist: {p!r}")
        for q in paths:
            if fs.isdir(q):
                found = [f for f in sorted(fs.find(q)) if not _hidden(f[len(q.rstrip("/")) + 1 :])]
                files.extend(found)
            elif fs.exists(q):
                files.append(q)
            else:
                raise FileNotFoundError(f"Input path does not exist: {q!r}")
    assert fs is not None
    return fs, files


def _hidden(relpath: str) -> bool:
    return any(part.startswith((".", "_")) for part in relpath.split("/"))


class TextFileRDD(RDD[str]):
    """Lines of text files, one partition per byte range (Hadoop's LineRecordReader rule)."""

    def __init__(self, ctx: Context, path: str, min_partitions: int, use_unicode: bool) -> None:
        from fsspec.utils import infer_compression

        fs, files = expand_input_paths(path)
        sizes = [fs.size(f) or 0 for f in files]
        total = sum(sizes)
        # Hadoop's rule: goal = total / minPartitions, capped at the 32 MiB local block size
        goal = max(1, min(total // max(1, min_partitions), _BLOCK_SIZE))
        splits: list[tuple[str, int, int]] = []
        for f, size in zip(files, sizes):
            if infer_compression(f) is not None or size == 0:
                splits.append((f, 0, -1))
                continue
            start = 0
            while size - start > goal * 1.1:
                splits.append((f, start, start + goal))
                start += goal
            splits.append((f, start, size))
        super().__init__(ctx, [], len(splits))
        self._fs = fs
        self._splits = splits
        self._use_unicode = use_unicode
        self.path = path

    def compute(self, split: int, tctx: TaskContext) -> Iterator[str]:
        f, start, end = self._splits[split]
        try:
            if end < 0:
                with self._fs.open(f, "rb", compression="infer") as fh:
                    data = fh.read()
                yield from _lines(data, self._use_unicode)
            else:
                yield from _read_lines(self._fs, f, start, end, self._use_unicode)
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{f!r} is not valid UTF-8 text ({e.reason} in the part of the file from byte "
                f"{start}); read it with textFile(..., use_unicode=False) to get bytes, "
                "or with binaryFiles"
            ) from e

    def __repr__(self) -> str:
        return f"{self.path} TextFileRDD[{self._id}]"


def _lines(data: bytes, use_unicode: bool) -> list[Any]:
    if not data:
        return []
    text: Any = data.decode("utf-8") if use_unicode else data
    nl = "\n" if use_unicode else b"\n"
    cr = "\r" if use_unicode else b"\r"
    lines = text.split(nl)
    if lines and not lines[-1]:
        lines.pop()
    if cr in text:
        lines = [ln[:-1] if ln.endswith(cr) else ln for ln in lines]
    return lines


def _read_lines(fs: Any, path: str, start: int, end: int, use_unicode: bool) -> Iterator[Any]:
    """Lines whose first byte lies in ``[start, end)``; the last one may run past ``end``."""
    with fs.open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            fh.readline()  # the line crossing `start` belongs to the previous split
        remaining = end - fh.tell()
        carry = b""
        while remaining > 0:
            chunk = fh.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            buf = carry + chunk if carry else chunk
            cut = buf.rfind(b"\n")
            if cut < 0:
                carry = buf
                continue
            yield from _lines(buf[: cut + 1], use_unicode)
            carry = buf[cut + 1 :]
        if carry:
            yield from _lines(carry + fh.readline(), use_unicode)


class WholeTextFilesRDD(RDD[tuple[str, Any]]):
    """``(path, content)`` per file, files spread over at most ``min_partitions`` partitions."""

    def __init__(
        self,
        ctx: Context,
        path: str,
        min_partitions: int,
        use_unicode: bool,
        decompress: bool = True,
    ) -> None:
        fs, files = expand_input_paths(path)
        n = max(1, min(min_partitions, len(files)))
        groups = [files[i * len(files) // n : (i + 1) * len(files) // n] for i in range(n)]
        super().__init__(ctx, [], n)
        self._fs = fs
        self._groups = groups
        self._use_unicode = use_unicode
        self._compression = "infer" if decompress else None

    def compute(self, split: int, tctx: TaskContext) -> Iterator[tuple[str, Any]]:
        for f in self._groups[split]:
            with self._fs.open(f, "rb", compression=self._compression) as fh:
                data = fh.read()
            text = data.decode("utf-8") if self._use_unicode else data
            yield (_hadoop_path(self._fs.unstrip_protocol(f)), text)


class BinaryRecordsRDD(RDD[bytes]):
    """Fixed-length records of flat binary files; splits fall on record boundaries."""

    def __init__(self, ctx: Context, path: str, record_length: int, min_partitions: int) -> None:
        if not isinstance(record_length, int) or record_length < 1:
            raise ValueError(f"recordLength={record_length!r} must be a positive integer")
        fs, files = expand_input_paths(path)
        sizes = [fs.size(f) or 0 for f in files]
        for f, size in zip(files, sizes):
            if size % record_length:
                raise ValueError(
                    f"file {f!r} has {size} bytes, not a multiple of recordLength={record_length}"
                )
        total = sum(sizes)
        goal = max(record_length, total // max(1, min_partitions) // record_length * record_length)
        splits: list[tuple[str, int, int]] = []
        for f, size in zip(files, sizes):
            for start in range(0, size, goal):
                splits.append((f, start, min(size, start + goal)))
        super().__init__(ctx, [], len(splits))
        self._fs = fs
        self._splits = splits
        self._record_length = record_length

    def compute(self, split: int, tctx: TaskContext) -> Iterator[bytes]:
        f, start, end = self._splits[split]
        n = self._record_length
        with self._fs.open(f, "rb") as fh:
            fh.seek(start)
            data = fh.read(end - start)
        return (data[i : i + n] for i in range(0, len(data), n))


def _hadoop_path(url: str) -> str:
    """Spell local paths as Hadoop does (``file:/abs/path``), as PySpark's keys are."""
    return "file:/" + url[len("file:///") :] if url.startswith("file:///") else url


class PickleFileRDD(RDD[Any]):
    """Records written by ``saveAsPickleFile``: one partition per part file."""

    def __init__(self, ctx: Context, path: str) -> None:
        fs, files = expand_input_paths(path)
        files = [f for f in files if f.rsplit("/", 1)[-1].startswith("part-")]
        super().__init__(ctx, [], len(files))
        self._fs = fs
        self._files = files

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        name = self._files[split]
        try:
            with self._fs.open(name, "rb") as fh:
                return iter(pickle.load(fh))
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise ValueError(
                f"{name!r} is not a file written by saveAsPickleFile, or it is corrupt: {e}"
            ) from e


def _prepare_output_dir(path: str) -> tuple[Any, str]:
    import fsspec

    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    if fs.exists(root):
        raise FileExistsError(
            f"Output directory {path!r} already exists; delete it or choose another path"
        )
    fs.makedirs(root, exist_ok=True)
    return fs, root


def save_as_text_file(rdd: RDD[Any], path: str, codec: str | None) -> None:
    fs, root = _prepare_output_dir(path)
    compression = None
    suffix = ""
    if codec is not None:
        name = codec.rsplit(".", 1)[-1].lower()
        compression = {"gzipcodec": "gzip", "bzip2codec": "bz2", "gzip": "gzip", "bz2": "bz2"}.get(
            name
        )
        if compression is None:
            raise ValueError(
                f"compressionCodecClass={codec!r} is not supported; "
                "use 'org.apache.hadoop.io.compress.GzipCodec' or 'BZip2Codec'"
            )
        suffix = {"gzip": ".gz", "bz2": ".bz2"}[compression]

    def write(split: int, it: Iterator[Any]) -> list[int]:
        name = f"{root}/part-{split:05d}{suffix}"
        tmp = f"{root}/.part-{split:05d}{suffix}.tmp"
        with fs.open(tmp, "wb", compression=compression) as fh:
            buf = []
            for x in it:
                buf.append(x if isinstance(x, str) else str(x))
                if len(buf) >= 8192:
                    fh.write(("\n".join(buf) + "\n").encode("utf-8"))
                    buf = []
            if buf:
                fh.write(("\n".join(buf) + "\n").encode("utf-8"))
        fs.mv(tmp, name)
        return []

    rdd.mapPartitionsWithIndex(write).collect()
    with fs.open(f"{root}/_SUCCESS", "wb"):
        pass


def save_as_pickle_file(rdd: RDD[Any], path: str) -> None:
    fs, root = _prepare_output_dir(path)

    def write(split: int, it: Iterator[Any]) -> list[int]:
        tmp = f"{root}/.part-{split:05d}.tmp"
        with fs.open(tmp, "wb") as fh:
            pickle.dump(list(it), fh, 5)
        fs.mv(tmp, f"{root}/part-{split:05d}")
        return []

    rdd.mapPartitionsWithIndex(write).collect()
    with fs.open(f"{root}/_SUCCESS", "wb"):
        pass
