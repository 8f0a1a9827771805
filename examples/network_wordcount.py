"""Counts words in UTF-8 text received from the network every second.

Port of PySpark's examples/src/main/python/streaming/network_wordcount.py; only
the imports changed.

Usage: network_wordcount.py <hostname> <port>
  <hostname> and <port> describe the TCP server that the stream connects to.

To run this on your local machine, first run a server:
    `$ nc -lk 9999`
and then run the example
    `$ python examples/network_wordcount.py localhost 9999`
"""
import sys

from dstreams import Context as SparkContext
from dstreams.streaming import StreamingContext

if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("Usage: network_wordcount.py <hostname> <port>", file=sys.stderr)
        sys.exit(-1)
    sc = SparkContext(appName="PythonStreamingNetworkWordCount")
    ssc = StreamingContext(sc, 1)

    lines = ssc.socketTextStream(sys.argv[1], int(sys.argv[2]))
    counts = lines.flatMap(lambda line: line.split(" "))\
                  .map(lambda word: (word, 1))\
                  .reduceByKey(lambda a, b: a + b)
    counts.pprint()

    ssc.start()
    ssc.awaitTermination()
