"""A name -> entry registry, like timm's: an unknown name is an error naming the close matches and
listing the valid ones."""

from __future__ import annotations

from typing import Generic, TypeVar

from trainables.errors import did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, error: type[Exception]):
        self.kind, self.error = kind, error
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise self.error(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                f"valid {self.kind}s: {', '.join(self.names())}"
            ) from None
