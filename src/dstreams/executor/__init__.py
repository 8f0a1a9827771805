"""Where tasks run: the backend protocol, the local worker-process backend and the worker."""
