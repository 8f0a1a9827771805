"""The batch engine's description of work: Context, RDDs, dependencies, I/O, checkpoints."""
