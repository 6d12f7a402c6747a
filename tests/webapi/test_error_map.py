"""The error map: every PBX client and live-model exception class answers one documented error."""
from __future__ import annotations

import gc

import pytest

from gateway.live.errors import NoSuchLeg
from gateway.pbx.errors import PbxAuthFailed, PbxError, PbxNotFound, PbxRejected, PbxUnreachable
from gateway.webapi import errors
from gateway.webapi.errors import UPSTREAM_ERRORS, translate


def family(root: type[Exception]) -> set[type[Exception]]:
    """`root` and every class below it."""
    classes = {root}
    for sub in root.__subclasses__():
        classes |= family(sub)
    return classes


def unmapped() -> set[type[Exception]]:
    """The PBX and live-model error classes that have no entry of their own in the map."""
    return {cls for root in (PbxError, NoSuchLeg) for cls in family(root) if cls not in UPSTREAM_ERRORS}


def test_every_pbx_and_live_error_class_has_its_own_entry():
    assert unmapped() == set()


def test_a_new_pbx_error_class_left_out_of_the_map_is_found():
    class PbxNewKind(PbxError):
        """A failure the map does not know yet."""

    found = [cls.__name__ for cls in unmapped()]

    del PbxNewKind     # so the walk in other tests no longer meets it
    gc.collect()
    assert found == ["PbxNewKind"]
    assert unmapped() == set()


@pytest.mark.parametrize("exc, expected, status", [
    (PbxUnreachable("connection refused"), errors.PbxDown, 503),
    (PbxAuthFailed("client id refused"), errors.PbxRefused, 502),
    (PbxNotFound("no such DN"), errors.NoSuchNumber, 404),
    (PbxRejected(409, "conflict"), errors.PbxRefused, 502),
    (PbxError("something else"), errors.PbxRefused, 502),
    (NoSuchLeg("extension 101 has no call in progress"), errors.NoSuchCall, 404),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v))
def test_each_class_translates_to_its_answer(exc, expected, status):
    answer = translate(exc)

    assert type(answer) is expected and answer.status == status


def test_other_exceptions_are_not_translated():
    assert translate(ValueError("a bug")) is None
