"""A value that must never be printed, logged or stored."""

from __future__ import annotations


class Secret:
    """Wraps a secret string so that repr(), str() and f-strings never reveal it.

    The only way to get the value is :meth:`reveal`, which makes every use of a
    secret easy to find in review.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")
