"""Compare a stream against a static dataset with ``transform``: the "compare against a model" pattern.

A static RDD holds a reference model (the expected price of each product).  Every
batch of observed prices is joined against it inside ``transform`` and the
observations that deviate by more than 20 % are flagged.  The input is a
``queueStream`` so the example runs on its own.

Run it with
    `$ python examples/transform_join_model.py`
"""
import time

from dstreams import Context as SparkContext
from dstreams.streaming import StreamingContext

if __name__ == "__main__":
    sc = SparkContext("local[2]", appName="TransformJoinModel")
    ssc = StreamingContext(sc, 1)

    # The static dataset: expected price per product, cached once.
    model = sc.parallelize([("apple", 1.0), ("bread", 2.5), ("milk", 1.2)]).cache()

    batches = [
        [("apple", 1.05), ("bread", 3.4), ("milk", 1.1)],
        [("apple", 1.6), ("milk", 1.25), ("tea", 4.0)],
        [("bread", 2.4)],
    ]
    observed = ssc.queueStream([sc.parallelize(b) for b in batches])

    def flag_outliers(time, rdd):
        joined = rdd.leftOuterJoin(model)
        return joined.map(lambda kv: (
            kv[0], kv[1][0], kv[1][1],
            "unknown product" if kv[1][1] is None
            else "OUTLIER" if abs(kv[1][0] - kv[1][1]) > 0.2 * kv[1][1] else "ok"))

    observed.transform(flag_outliers).pprint()

    ssc.start()
    time.sleep(4)
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
