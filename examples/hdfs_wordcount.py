"""Counts words in new text files created in the given directory.

Port of PySpark's examples/src/main/python/streaming/hdfs_wordcount.py; only the
imports changed.  The directory may be any fsspec URL (a local path works).

Usage: hdfs_wordcount.py <directory>
   <directory> is the directory that the stream monitors for new files.

Run it with
    `$ python examples/hdfs_wordcount.py /tmp/words-in`
then create files in the directory (write elsewhere and move them in):
    `$ echo "hello world" > /tmp/w.txt && mv /tmp/w.txt /tmp/words-in/`
"""
import sys

from dstreams import Context as SparkContext
from dstreams.streaming import StreamingContext

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("Usage: hdfs_wordcount.py <directory>", file=sys.stderr)
        sys.exit(-1)

    sc = SparkContext(appName="PythonStreamingHDFSWordCount")
    ssc = StreamingContext(sc, 1)

    lines = ssc.textFileStream(sys.argv[1])
    counts = lines.flatMap(lambda line: line.split(" "))\
                  .map(lambda x: (x, 1))\
                  .reduceByKey(lambda a, b: a + b)
    counts.pprint()

    ssc.start()
    ssc.awaitTermination()
