"""Blocks and storage levels: per-executor block stores and the block server/client."""
