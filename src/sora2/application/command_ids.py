"""Ids of what a keyed command creates, derived from the client's `Idempotency-Key`.

A request whose process died mid-way leaves no answer to replay; the retry that takes its
key over runs the command again. With the same key the command names the same video or
order, so if the first run committed, the second finds it and answers with it instead of
creating (and charging) another; if it never committed, the second creates it.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5


def keyed_id(user_id: UUID, operation: str, key: str | None) -> UUID | None:
    """The same (user, operation, key) always gives the same id; no key, no id."""
    if key is None:
        return None
    return uuid5(NAMESPACE_URL, f"/idempotency/{user_id}/{operation}/{key}")
