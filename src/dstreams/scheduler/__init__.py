"""Turning lineage into tasks: the DAG and task-set state machines and the job runner."""
