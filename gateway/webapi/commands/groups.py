"""Ring group commands (legacy `group.*`): members, free members, replacing the member list."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.webapi import answers, lookup
from gateway.webapi.params import Extension, NumberList
from gateway.webapi.registry import command

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)

def _member_numbers(ctx: Services, num: str) -> list[str]:
    group = lookup.ring_group(ctx, num, select="Id,Number", expand="Members")
    return [str(member["Number"]) for member in group.get("Members") or []]


@command("group.members.get", cached=True, num=Extension())
def group_members_get(ctx: Services, num: str) -> dict[str, Any]:
    """Ring group `num`'s member extensions, in the group's order."""
    return answers.members(_member_numbers(ctx, num))


@command("group.free.get", num=Extension())
def group_free_get(ctx: Services, num: str) -> dict[str, Any]:
    """Ring group `num`'s members that have no call right now (not ringing, dialling or talking)."""
    return answers.members([n for n in _member_numbers(ctx, num) if not ctx.live.is_busy(n)])


@command("group.members.set", write=True, num=Extension(), members=NumberList())
def group_members_set(ctx: Services, num: str, members: list[str]) -> dict[str, Any]:
    """Replace ring group `num`'s members with the extensions `members` (comma-separated; may be empty)."""
    group = lookup.ring_group(ctx, num, select="Id,Number")
    lookup.replace_members(ctx, "RingGroups", group, "Members", members)
    logger.info("ring group %s: members set to %s", num, ",".join(members))
    return answers.result(True)
