"""File input and output through fsspec: textFile splits, wholeTextFiles, save and pickle files."""

from __future__ import annotations

import gzip
import os

import pytest

# Contents whose lines must come back exactly, whatever the split boundaries.
CONTENTS = {
    "plain": b"alpha\nbeta\ngamma\ndelta\n",
    "no_trailing_newline": b"one\ntwo\nthree",
    "crlf": b"a1\r\nb22\r\nc333\r\n\r\nd\r\n",
    "empty_lines": b"\n\nx\n\n\ny\n\n",
    "long_and_short": b"x" * 97 + b"\n" + b"y\n" * 20 + b"z" * 51 + b"\nend",
    "unicode": "héllo\nwörld\n日本語\n".encode(),
    "single_line": b"only",
    "only_newlines": b"\n\n\n",
}


def expected_lines(data: bytes) -> list[str]:
    # Hadoop's LineRecordReader: split on \n, strip a trailing \r, no empty last line
    text = data.decode("utf-8")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_text_file_lines_never_lost_or_duplicated(sc, tmp_path, name):
    data = CONTENTS[name]
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    want = expected_lines(data)
    for n in [1, 2, 3, 4, 5, 7, 11, len(data), len(data) + 5, 3 * len(data)]:
        rdd = sc.textFile(str(path), n)
        got = rdd.collect()
        assert got == want, f"minPartitions={n}: {got!r}"


def test_text_file_many_split_sizes_on_a_bigger_file(sc, tmp_path):
    lines = [("w" * (i % 13)) + str(i) for i in range(2000)]
    lines[100] = ""
    lines[101] = ""
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    for n in [1, 2, 3, 9, 64, 333]:
        rdd = sc.textFile(str(path), n)
        assert rdd.getNumPartitions() >= n
        assert rdd.collect() == lines


def test_text_file_split_count_follows_min_partitions(sc, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789\n" * 100)
    assert sc.textFile(str(path), 4).getNumPartitions() == 4
    assert sc.textFile(str(path)).getNumPartitions() == sc.defaultMinPartitions == 2


def test_text_file_gz_is_one_split(sc, tmp_path):
    path = tmp_path / "data.txt.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"l1\nl2\r\nl3")
    rdd = sc.textFile(str(path), 5)
    assert rdd.getNumPartitions() == 1
    assert rdd.collect() == ["l1", "l2", "l3"]


def test_text_file_directory_glob_and_list(sc, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    (d / "b.txt").write_bytes(b"b1\nb2\n")
    (d / "a.txt").write_bytes(b"a1\n")
    (d / "_SUCCESS").write_bytes(b"")
    (d / ".hidden").write_bytes(b"secret\n")
    (d / "c.log").write_bytes(b"c1\n")
    # a directory: every visible file, in name order
    assert sc.textFile(str(d)).collect() == ["a1", "b1", "b2", "c1"]
    assert sc.textFile(str(d / "*.txt")).collect() == ["a1", "b1", "b2"]
    assert sorted(sc.textFile(f"{d / 'a.txt'},{d / 'c.log'}").collect()) == ["a1", "c1"]
    assert sc.textFile("file://" + str(d / "a.txt")).collect() == ["a1"]


def test_text_file_empty_file_and_missing_path(sc, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    assert sc.textFile(str(tmp_path / "empty.txt"), 3).collect() == []
    with pytest.raises(FileNotFoundError, match="nope"):
        sc.textFile(str(tmp_path / "nope.txt"))


def test_text_file_use_unicode_false_gives_bytes(sc, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes("ä\nb\r\n".encode())
    assert sc.textFile(str(path), 2, use_unicode=False).collect() == ["ä".encode(), b"b"]


def test_whole_text_files(sc, tmp_path):
    d = tmp_path / "w"
    d.mkdir()
    (d / "x.txt").write_text("hello\nworld")
    (d / "y.txt").write_text("")
    with gzip.open(d / "z.txt.gz", "wb") as fh:
        fh.write(b"zipped")
    rdd = sc.wholeTextFiles(str(d))
    out = dict(rdd.collect())
    assert {os.path.basename(k) for k in out} == {"x.txt", "y.txt", "z.txt.gz"}
    by_name = {os.path.basename(k): v for k, v in out.items()}
    assert by_name == {"x.txt": "hello\nworld", "y.txt": "", "z.txt.gz": "zipped"}
    # keys are URLs (PySpark's are Hadoop's ``file:/abs/path``; fsspec's are ``file:///abs/path``)
    assert all(k.startswith("file:") and k.endswith(str(d / os.path.basename(k))) for k in out)
    assert rdd.getNumPartitions() == 2
    assert sc.wholeTextFiles(str(d), 10).getNumPartitions() == 3


def test_save_as_text_file_roundtrip(sc, tmp_path):
    out = tmp_path / "out"
    rdd = sc.parallelize([1, "two", (3, 4), None], 3)
    rdd.saveAsTextFile(str(out))
    names = sorted(os.listdir(out))
    assert names == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    assert sc.textFile(str(out)).collect() == ["1", "two", "(3, 4)", "None"]
    assert (out / "part-00000").read_text() == "1\n"


def test_save_as_text_file_refuses_existing_directory(sc, tmp_path):
    out = tmp_path / "exists"
    sc.parallelize([1]).saveAsTextFile(str(out))
    with pytest.raises(FileExistsError, match="exists"):
        sc.parallelize([2]).saveAsTextFile(str(out))
    assert sc.textFile(str(out)).collect() == ["1"]


def test_save_as_text_file_gzip(sc, tmp_path):
    out = tmp_path / "gz"
    sc.parallelize(["a", "b", "c"], 2).saveAsTextFile(
        str(out), "org.apache.hadoop.io.compress.GzipCodec"
    )
    assert sorted(os.listdir(out)) == ["_SUCCESS", "part-00000.gz", "part-00001.gz"]
    assert sc.textFile(str(out)).collect() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="LZ4"):
        sc.parallelize([1]).saveAsTextFile(str(tmp_path / "x"), "LZ4Codec")


def test_save_empty_partitions(sc, tmp_path):
    out = tmp_path / "sparse"
    sc.parallelize([1], 3).saveAsTextFile(str(out))
    assert sc.textFile(str(out)).collect() == ["1"]


def test_pickle_file_roundtrip(sc, tmp_path):
    out = tmp_path / "pickled"
    data = [{"a": 1}, (2, 3), "four", None, 5.5, [6]]
    sc.parallelize(data, 4).saveAsPickleFile(str(out))
    back = sc.pickleFile(str(out))
    assert back.getNumPartitions() == 4
    assert back.collect() == data
    with pytest.raises(FileExistsError):
        sc.parallelize([1]).saveAsPickleFile(str(out))


def test_text_that_is_not_utf8_names_the_file_and_the_fix(fresh_context, tmp_path):
    from dstreams.errors import TaskFailedError

    sc = fresh_context("local[1]", {"dstreams.task.maxFailures": "1"})
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nbad \xff\xfe line\n")
    with pytest.raises(TaskFailedError, match="bad.txt' is not valid UTF-8 text") as e:
        sc.textFile(str(path)).collect()
    assert "use_unicode=False" in str(e.value)
    assert sc.textFile(str(path), use_unicode=False).collect() == [
        b"good line",
        b"bad \xff\xfe line",
    ]


def test_a_corrupt_pickle_file_is_named(fresh_context, tmp_path):
    from dstreams.errors import TaskFailedError

    sc = fresh_context("local[1]", {"dstreams.task.maxFailures": "1"})
    out = tmp_path / "out"
    sc.parallelize([1, 2, 3], 1).saveAsPickleFile(str(out))
    assert sc.pickleFile(str(out)).collect() == [1, 2, 3]
    (out / "part-00000").write_bytes(b"not a pickle")
    with pytest.raises(TaskFailedError, match="part-00000' is not a file written by saveAs"):
        sc.pickleFile(str(out)).collect()
