"""Find a PBX entity by its legacy number, answering NoSuchNumber (404) when there is none."""
from __future__ import annotations

from typing import Any

from gateway.pbx.errors import PbxNotFound
from gateway.webapi.errors import NoSuchNumber

# XAPI entity set -> the word a legacy client understands in "... does not exist"
_WHAT = {"Users": "extension", "Queues": "queue", "RingGroups": "ring group",
         "Receptionists": "IVR", "Trunks": "external line"}


def find(ctx: Any, entity_set: str, number: str, **options: Any) -> dict:
    """The entity of `entity_set` whose Number is `number` (options: select=, expand=)."""
    try:
        return ctx.xapi.find(entity_set, number, **options)
    except PbxNotFound:
        raise NoSuchNumber(f"{_WHAT.get(entity_set, entity_set)} {number} does not exist") from None


def user(ctx: Any, number: str, **options: Any) -> dict:
    return find(ctx, "Users", number, **options)


def queue(ctx: Any, number: str, **options: Any) -> dict:
    return find(ctx, "Queues", number, **options)


def ring_group(ctx: Any, number: str, **options: Any) -> dict:
    return find(ctx, "RingGroups", number, **options)
