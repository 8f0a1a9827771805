"""The public surface is exactly what __all__ says, and it is importable."""

import dstreams


def test_exported_names_are_pinned():
    assert sorted(dstreams.__all__) == sorted(
        [
            "Accumulator",
            "AccumulatorParam",
            "Broadcast",
            "Conf",
            "Context",
            "DStream",
            "Partitioner",
            "RDD",
            "StorageLevel",
            "StreamingContext",
            "StreamingListener",
            "StateSpec",
            "TaskContext",
            "portable_hash",
            "__version__",
        ]
    )
    for name in dstreams.__all__:
        assert getattr(dstreams, name) is not None


def test_every_module_declares_all():
    import importlib
    import pkgutil

    missing = []
    for mod in pkgutil.walk_packages(dstreams.__path__, "dstreams."):
        m = importlib.import_module(mod.name)
        if not mod.ispkg and not hasattr(m, "__all__"):
            missing.append(mod.name)
        if not (m.__doc__ or "").strip():
            missing.append(mod.name + " (no docstring)")
    assert missing == []
