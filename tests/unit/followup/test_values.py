from dataclasses import FrozenInstanceError, replace

import pytest

from followup.values import value


@value
class Parcel:
    parcel_id: str
    scans: int = 0


def test_a_value_is_compared_and_hashed_by_its_fields() -> None:
    assert Parcel("P-1", 2) == Parcel("P-1", 2)
    assert Parcel("P-1", 2) != Parcel("P-1", 3)
    assert len({Parcel("P-1", 2), Parcel("P-1", 2), Parcel("P-2")}) == 2


def test_a_value_is_copied_with_replace_and_has_no_instance_dict() -> None:
    first = Parcel("P-1")
    second = replace(first, scans=1)
    assert (first.scans, second.scans) == (0, 1)
    assert not hasattr(first, "__dict__")
    with pytest.raises(AttributeError):
        first.colour = "red"  # type: ignore[attr-defined]


def test_a_value_is_not_frozen_at_run_time() -> None:
    # Immutability is the type checker's to enforce (mypy: "read-only"); at run time the
    # fields are plain slots, which is what makes building one cheap.
    parcel = Parcel("P-1")
    try:
        parcel.scans = 5  # type: ignore[misc]
    except FrozenInstanceError:  # pragma: no cover - the point of the decorator
        pytest.fail("a value must not pay for frozen fields at run time")
    assert parcel.scans == 5
