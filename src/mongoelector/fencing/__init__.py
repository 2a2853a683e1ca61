"""Fencing: making writes elsewhere depend on still holding a lock."""

from mongoelector.fencing.transaction import async_fenced_transaction, fenced_transaction

__all__ = ["async_fenced_transaction", "fenced_transaction"]
