"""Aggregates whose state is flat: copied for each command by copying their containers.

Every load of a cached aggregate is a `deepcopy`, so a command that fails leaves the cache
as it was. Sora2's aggregates hold only immutable values (ids, datetimes, numbers, text),
directly or in lists and dicts of them, so a copy of those containers is already a deep
copy. `copy.deepcopy` instead walks every value and rebuilds each UUID and datetime through
`__reduce_ex__`: for a ledger with a hundred open holds that cost more than the rest of a
generate command (profiled), and it grew with the ledger.
"""

from __future__ import annotations

from typing import Any

_FLAT_CONTAINERS = (list, dict, set)


class FlatCopy:
    """Mix in before `Aggregate`; every attribute must be an immutable value or a list,
    dict or set of immutable values (tests/unit/test_flat_copy.py checks each aggregate)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(self))
        clone.__dict__.update(
            (name, value.copy() if type(value) in _FLAT_CONTAINERS else value)
            for name, value in self.__dict__.items()
        )
        memo[id(self)] = clone
        return clone
