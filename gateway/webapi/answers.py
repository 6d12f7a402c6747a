"""JSON shapes shared by several legacy commands (004_…txt is the contract: keys, casing, types)."""
from __future__ import annotations

from typing import Any, Iterable


def result(value: Any) -> dict[str, Any]:
    """{"result": value}: true/false for set commands, a phrase such as "Drop" for actions."""
    return {"result": value}


def nums(numbers: Iterable[str]) -> dict[str, Any]:
    """{"nums": ["100", "101"]}: DN numbers as strings, in the PBX's order."""
    return {"nums": [str(n) for n in numbers]}


def members(items: list[Any]) -> dict[str, Any]:
    """{"count": n, "members": [...]}: ring group, department and queue member lists."""
    return {"count": len(items), "members": items}


def queue_member(number: str, first_name: str, last_name: str, is_logged_in: bool) -> dict[str, Any]:
    """One queue agent as queue.members.get / queue.free.get / queue.talk.get show it."""
    return {"num": str(number), "name": first_name or "", "lastname": last_name or "",
            "loggedIn": bool(is_logged_in)}
