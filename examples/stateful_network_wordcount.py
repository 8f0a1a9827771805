"""Counts words in UTF-8 text received from the network every second, keeping a running total.

Port of PySpark's examples/src/main/python/streaming/stateful_network_wordcount.py;
only the imports changed.

Usage: stateful_network_wordcount.py <hostname> <port>
  <hostname> and <port> describe the TCP server that the stream connects to.

To run this on your local machine, first run a server:
    `$ nc -lk 9999`
and then run the example
    `$ python examples/stateful_network_wordcount.py localhost 9999`
"""
import sys

from dstreams import Context as SparkContext
from dstreams.streaming import StreamingContext

if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("Usage: stateful_network_wordcount.py <hostname> <port>", file=sys.stderr)
        sys.exit(-1)
    sc = SparkContext(appName="PythonStreamingStatefulNetworkWordCount")
    ssc = StreamingContext(sc, 1)
    ssc.checkpoint("checkpoint")

    # RDD with initial state (key, value) pairs
    initialStateRDD = sc.parallelize([('hello', 1), ('world', 1)])

    def updateFunc(new_values, last_sum):
        return sum(new_values) + (last_sum or 0)

    lines = ssc.socketTextStream(sys.argv[1], int(sys.argv[2]))
    running_counts = lines.flatMap(lambda line: line.split(" "))\
                          .map(lambda word: (word, 1))\
                          .updateStateByKey(updateFunc, initialRDD=initialStateRDD)

    running_counts.pprint()

    ssc.start()
    ssc.awaitTermination()
