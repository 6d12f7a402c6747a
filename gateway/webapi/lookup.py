"""Find a PBX entity by its legacy number, answering NoSuchNumber (404) when there is none."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterable, TypeVar

from gateway.pbx import odata
from gateway.pbx.errors import PbxNotFound
from gateway.webapi.errors import NoSuchNumber

if TYPE_CHECKING:
    from gateway.services import Services

T = TypeVar("T")

# XAPI entity set -> the word a legacy client understands in "... does not exist"
_WHAT = {"Users": "extension", "Queues": "queue", "RingGroups": "ring group",
         "Receptionists": "IVR", "Trunks": "external line"}


def find(ctx: Services, entity_set: str, number: str, **options: Any) -> dict[str, Any]:
    """The entity of `entity_set` whose Number is `number` (options: select=, expand=)."""
    try:
        return ctx.xapi.find(entity_set, number, **options)
    except PbxNotFound:
        raise NoSuchNumber(f"{_WHAT.get(entity_set, entity_set)} {number} does not exist") from None


def user(ctx: Services, number: str, **options: Any) -> dict[str, Any]:
    return find(ctx, "Users", number, **options)


def queue(ctx: Services, number: str, **options: Any) -> dict[str, Any]:
    return find(ctx, "Queues", number, **options)


def ring_group(ctx: Services, number: str, **options: Any) -> dict[str, Any]:
    return find(ctx, "RingGroups", number, **options)


# Numbers per $filter when looking extensions up; keeps the query string short.
_FILTER_CHUNK = 20


def users_by_number(ctx: Services, numbers: Iterable[str], select: str = "Number") -> dict[str, dict[str, Any]]:
    """The extensions among `numbers`, keyed by number (a few numbers per XAPI query)."""
    wanted = list(numbers)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _FILTER_CHUNK):
        clauses = (odata.eq("Number", n) for n in wanted[start:start + _FILTER_CHUNK])
        for row in ctx.xapi.list("Users", filter=odata.any_of(*clauses), select=select):
            found[str(row.get("Number"))] = row
    return found


def require_extensions(ctx: Services, numbers: list[str]) -> None:
    """Raise NoSuchNumber naming the first of `numbers` that is not an extension on the PBX."""
    found = users_by_number(ctx, numbers)
    missing = [n for n in numbers if n not in found]
    if missing:
        raise NoSuchNumber(f"extension {missing[0]} does not exist")


def replace_members(ctx: Services, entity_set: str, entity: dict[str, Any], collection: str,
                    numbers: list[str]) -> None:
    """Set `entity`'s `collection` (Members, Agents, Managers) to the extensions `numbers`.

    Every number must be an extension (NoSuchNumber names the first that is not). A collection in a
    PATCH body replaces the whole collection (V20-API-NOTES §0, §c), so an empty list empties it.
    """
    require_extensions(ctx, numbers)
    ctx.xapi.patch(f"/{entity_set}({entity['Id']})", {collection: [{"Number": n} for n in numbers]})


def cached(ctx: Services, key: tuple[Hashable, ...], load: Callable[[], T], *, is_state: bool = False) -> T:
    """`load()` through the shared read cache: configuration for [webapi] cache_s, extension state
    (registration, forwarding status, queue login) for [webapi] state_cache_s. Write commands clear it."""
    ttl_s = ctx.config.webapi.state_cache_s if is_state else None
    return ctx.cache.get_or_load(("read", *key), load, ttl_s)
