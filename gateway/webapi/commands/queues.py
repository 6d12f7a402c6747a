"""Call queue commands (legacy `queue.*`): agents and their state, agents/managers, create/update/delete."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.pbx.errors import PbxRejected
from gateway.webapi import answers, lookup
from gateway.webapi.errors import BadParameter
from gateway.webapi.params import Extension, Integer, NumberList, OnOff, Strategy, Text
from gateway.webapi.registry import command

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)


def _agents(ctx: Services, num: str) -> list[dict[str, Any]]:
    """Queue `num`'s agents as `answers.queue_member` dicts, in the queue's order.

    v20 keeps no per-queue login state (V20-API-NOTES §b), so `loggedIn` is the agent's global
    `QueueStatus`.
    """
    queue = lookup.cached(ctx, ("queue-agents", num), lambda: lookup.queue(
        ctx, num, select="Id,Number", expand="Agents"))
    numbers = [str(agent["Number"]) for agent in queue.get("Agents") or []]
    users = lookup.cached(ctx, ("users-state", *numbers), lambda: lookup.users_by_number(
        ctx, numbers, select="Number,FirstName,LastName,QueueStatus"), is_state=True)
    rows = [(n, users.get(n, {})) for n in numbers]
    return [answers.queue_member(n, u.get("FirstName", ""), u.get("LastName", ""),
                                 u.get("QueueStatus") == "LoggedIn") for n, u in rows]


def _free_agents(ctx: Services, num: str) -> list[dict[str, Any]]:
    return [a for a in _agents(ctx, num) if a["loggedIn"] and not ctx.live.is_busy(a["num"])]


def _is_talking(ctx: Services, number: str) -> bool:
    return any(leg.status == "talking" for leg in ctx.live.legs_of(number))


# Legacy queue.new / queue.update parameters; every one but `num` may be left out.
_QUEUE_PARAMS: dict[str, Any] = dict(
    num=Extension(), name=Text(required=False, max_len=100), pollingstrategy=Strategy(required=False),
    mastertimeout=Integer(required=False, minimum=0, maximum=86400),
    ringtimeout=Integer(required=False, minimum=1, maximum=3600),
    enableintro=OnOff(required=False), introfile=Text(required=False, max_len=200),
    announcequeueposition=OnOff(required=False),
    announcementinterval=Integer(required=False, minimum=0, maximum=3600),
)


def _queue_fields(name: str | None, strategy: str | None, master_timeout_s: int | None,
                  ring_timeout_s: int | None, enable_intro: bool | None, intro_file: str | None,
                  announce_position: bool | None, announcement_interval_s: int | None) -> dict[str, Any]:
    """The v20 `Pbx.Queue` fields for the legacy values that were given (V20-API-NOTES §c)."""
    fields = {"Name": name, "PollingStrategy": strategy, "MasterTimeout": master_timeout_s,
              "RingTimeout": ring_timeout_s, "EnableIntro": enable_intro, "IntroFile": intro_file,
              "AnnounceQueuePosition": announce_position, "AnnouncementInterval": announcement_interval_s}
    return {key: value for key, value in fields.items() if value is not None}


@command("queue.members.get", num=Extension())
def queue_members_get(ctx: Services, num: str) -> dict[str, Any]:
    """Queue `num`'s agents with names and queue login status.

    Difference on v20: loggedIn is the agent's global queue status (v20 has no per-queue login).
    """
    return answers.members(_agents(ctx, num))


@command("queue.free.get", num=Extension())
def queue_free_get(ctx: Services, num: str) -> dict[str, Any]:
    """Queue `num`'s agents who are logged in and have no call right now."""
    return answers.members(_free_agents(ctx, num))


@command("queue.talk.get", num=Extension())
def queue_talk_get(ctx: Services, num: str) -> dict[str, Any]:
    """Queue `num`'s agents who are talking right now.

    Difference on v20: an agent talking on any call counts, not only on this queue's calls.
    """
    return answers.members([a for a in _agents(ctx, num) if _is_talking(ctx, a["num"])])


@command("queue.isfree.get", num=Extension())
def queue_isfree_get(ctx: Services, num: str) -> dict[str, Any]:
    """Whether queue `num` has at least one logged-in agent with no call right now."""
    return answers.result(bool(_free_agents(ctx, num)))


@command("queue.agents.set", write=True, num=Extension(), members=NumberList())
def queue_agents_set(ctx: Services, num: str, members: list[str]) -> dict[str, Any]:
    """Replace queue `num`'s agents with the extensions `members` (comma-separated; may be empty)."""
    queue = lookup.queue(ctx, num, select="Id,Number")
    lookup.replace_members(ctx, "Queues", queue, "Agents", members)
    logger.info("queue %s: agents set to %s", num, ",".join(members))
    return answers.result(True)


@command("queue.managers.set", write=True, num=Extension(), managers=NumberList())
def queue_managers_set(ctx: Services, num: str, managers: list[str]) -> dict[str, Any]:
    """Replace queue `num`'s managers with the extensions `managers` (comma-separated; may be empty)."""
    queue = lookup.queue(ctx, num, select="Id,Number")
    lookup.replace_members(ctx, "Queues", queue, "Managers", managers)
    logger.info("queue %s: managers set to %s", num, ",".join(managers))
    return answers.result(True)


@command("queue.new", write=True, **_QUEUE_PARAMS)
def queue_new(ctx: Services, num: str, name: str | None, pollingstrategy: str | None,
              mastertimeout: int | None, ringtimeout: int | None, enableintro: bool | None,
              introfile: str | None, announcequeueposition: bool | None,
              announcementinterval: int | None) -> dict[str, Any]:
    """Create queue `num`; pollingstrategy is 004's number (0 Hunt, 1 Ring All, 3-13), times in seconds."""
    fields = _queue_fields(name, pollingstrategy, mastertimeout, ringtimeout, enableintro, introfile,
                           announcequeueposition, announcementinterval)
    try:
        ctx.xapi.post("/Queues", {"Number": num, "Name": name or f"Queue {num}", **fields})
    except PbxRejected as exc:
        if "ALREADY_IN_USE" in exc.message:  # v20's 400 for a number any DN already has
            raise BadParameter("num", f"a number not in use yet; {num} is already taken") from None
        raise
    logger.info("queue %s created", num)
    return answers.result("Create queue")


@command("queue.update", write=True, **_QUEUE_PARAMS)
def queue_update(ctx: Services, num: str, name: str | None, pollingstrategy: str | None,
                 mastertimeout: int | None, ringtimeout: int | None, enableintro: bool | None,
                 introfile: str | None, announcequeueposition: bool | None,
                 announcementinterval: int | None) -> dict[str, Any]:
    """Change the given settings of queue `num` (same parameters as queue.new; others stay)."""
    queue = lookup.queue(ctx, num, select="Id,Number")
    fields = _queue_fields(name, pollingstrategy, mastertimeout, ringtimeout, enableintro, introfile,
                           announcequeueposition, announcementinterval)
    if fields:
        ctx.xapi.patch(f"/Queues({queue['Id']})", fields)
    logger.info("queue %s updated: %s", num, ",".join(fields))
    return answers.result("Update queue")


@command("queue.del", write=True, num=Extension())
def queue_del(ctx: Services, num: str) -> dict[str, Any]:
    """Delete queue `num`."""
    queue = lookup.queue(ctx, num, select="Id,Number")
    ctx.xapi.delete(f"/Queues({queue['Id']})")
    logger.info("queue %s deleted", num)
    return answers.result("Delete queue")
