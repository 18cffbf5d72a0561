"""Immutable records for the hot paths, at the cost of a plain dataclass."""

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def value(cls: type[T]) -> type[T]:
    """A slotted dataclass that the type checker treats as frozen (assigning a field is an
    error; copy it with ``dataclasses.replace``) and that is hashable like a frozen one.

    At run time it is not frozen: a frozen dataclass sets each field in ``__init__`` through
    ``object.__setattr__``, which makes building one 2.5 times as slow (3.2 against 1.3 us
    for nine fields), and the ingest paths build several per event.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)
