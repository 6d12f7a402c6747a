"""Directory lists (legacy `all.*` and `extgroup.members.get`): DN numbers in the PBX's order.

Legacy "extension groups" are v20 departments (`/Groups`); the default department, named
"DEFAULT" in v20, keeps its legacy name "__DEFAULT__" (V20-API-NOTES §c).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.webapi import answers
from gateway.webapi.errors import NoSuchNumber
from gateway.webapi.params import Text
from gateway.webapi.registry import command

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)

DEFAULT_GROUP = "__DEFAULT__"


def _numbers(ctx: Services, entity_set: str) -> list[str]:
    return [str(row["Number"]) for row in ctx.xapi.list(entity_set, select="Number")]


def _group_name(group: dict[str, Any]) -> str:
    """A department's legacy name: "__DEFAULT__" for the default one, else its own name."""
    if group.get("IsDefault") or group.get("Name") == "DEFAULT":
        return DEFAULT_GROUP
    return str(group.get("Name") or "")


@command("all.line.get", cached=True)
def all_line_get(ctx: Services) -> dict[str, Any]:
    """Every external line (trunk) by its DN number."""
    return answers.nums(_numbers(ctx, "Trunks"))


@command("all.ext.get", cached=True)
def all_ext_get(ctx: Services) -> dict[str, Any]:
    """Every user extension's number."""
    return answers.nums(_numbers(ctx, "Users"))


@command("all.registered.get")
def all_registered_get(ctx: Services) -> dict[str, Any]:
    """The extensions with at least one registered phone or app right now."""
    # Filtered here rather than with $filter=IsRegistered eq true, which is unverified (§b).
    rows = ctx.xapi.list("Users", select="Number,IsRegistered")
    return answers.nums(str(row["Number"]) for row in rows if row.get("IsRegistered"))


@command("all.group.get", cached=True)
def all_group_get(ctx: Services) -> dict[str, Any]:
    """Every ring group's number."""
    return answers.nums(_numbers(ctx, "RingGroups"))


@command("all.ivr.get", cached=True)
def all_ivr_get(ctx: Services) -> dict[str, Any]:
    """Every IVR (digital receptionist) number."""
    return answers.nums(_numbers(ctx, "Receptionists"))


@command("all.extgroup.get", cached=True)
def all_extgroup_get(ctx: Services) -> dict[str, Any]:
    """Every department's name, the default one as "__DEFAULT__"."""
    groups = ctx.xapi.list("Groups", select="Id,Name,IsDefault")
    return {"extGroups": [_group_name(group) for group in groups]}


@command("extgroup.members.get", cached=True, name=Text(max_len=100))
def extgroup_members_get(ctx: Services, name: str) -> dict[str, Any]:
    """The extensions of department `name` ("__DEFAULT__" is the default department)."""
    groups = ctx.xapi.list("Groups", select="Id,Name,IsDefault", expand="Members")
    group = next((g for g in groups if _group_name(g) == name), None)
    if group is None:
        raise NoSuchNumber(f"extension group {name!r} does not exist")
    # Departments in v20 may also hold queues, ring groups and IVRs; legacy groups held extensions.
    members = [m for m in group.get("Members") or [] if m.get("Type") in (None, "Extension")]
    return answers.members([str(m["Number"]) for m in members])


@command("all.queue.get", cached=True)
def all_queue_get(ctx: Services) -> dict[str, Any]:
    """Every call queue's number."""
    return answers.nums(_numbers(ctx, "Queues"))
