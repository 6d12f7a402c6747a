"""Company phonebook commands (legacy `contact.*`): find by number, create, delete, update, read.

Legacy contact fields map to v20 `Pbx.Contact` fields as V20-API-NOTES §c lists; legacy `data2`
(Home2) and `data8` (Homefax) have no v20 field: they are accepted and dropped, and read back as "".
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from gateway.pbx import odata
from gateway.pbx.errors import PbxNotFound
from gateway.webapi import answers
from gateway.webapi.errors import NoSuchNumber
from gateway.webapi.params import Integer, PhoneSearch, Text
from gateway.webapi.registry import command

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)

# Legacy parameter -> v20 Pbx.Contact field (None: v20 has no such field).
FIELDS: dict[str, str | None] = {
    "firstname": "FirstName", "lastname": "LastName", "company": "CompanyName", "phone": "PhoneNumber",
    "data0": "Mobile2", "data1": "Home", "data2": None, "data3": "Business", "data4": "Business2",
    "data5": "Email", "data6": "Other", "data7": "BusinessFax", "data8": None, "data9": "Pager",
}
# The v20 fields holding phone numbers, searched by contact.find.
NUMBER_FIELDS = ("PhoneNumber", "Mobile2", "Home", "Business", "Business2", "BusinessFax", "Pager", "Other")

_CONTACT_PARAMS: dict[str, Any] = {name: Text(required=False, max_len=255) for name in FIELDS}


def _v20_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The v20 contact fields for the legacy values that were given; unmapped ones are dropped."""
    body = {v20_name: value for name, value in values.items()
            if (v20_name := FIELDS.get(name)) and value is not None}
    dropped = [name for name in values if name in FIELDS and not FIELDS[name] and values[name]]
    if dropped:
        logger.info("contact fields %s have no v20 counterpart and are not stored", ",".join(dropped))
    return body


def _plain(number: str) -> str:
    """`number` without the spaces, dashes, dots and brackets people format numbers with."""
    return re.sub(r"[\s\-.()/]", "", number)


def is_match(number: str, wanted: str, min_len: int) -> bool:
    """Legacy rule: `number` equals `wanted`, or ends with it when `wanted` is at least min_len long.

    Both sides are compared without formatting characters ("+420 603 555 666" ends with "555666").
    """
    number, wanted = _plain(number), _plain(wanted)
    if not number or not wanted:
        return False
    return number == wanted or (len(wanted) >= min_len and number.endswith(wanted))


@contextmanager
def _existing(contact_id: int) -> Iterator[None]:
    """Turn the PBX's 404 for a contact id into NoSuchNumber naming it."""
    try:
        yield
    except PbxNotFound:
        raise NoSuchNumber(f"contact {contact_id} does not exist") from None


@command("contact.find", num=PhoneSearch(max_len=64), min_len=Integer(required=False, default=0, maximum=64))
def contact_find(ctx: Services, num: str, min_len: int) -> dict[str, Any]:
    """Ids of contacts with a number equal to `num`, or ending with it when `num` is min_len long or more.

    `num` is a phone number (digits, spaces and + - ( ) . / * #); anything else is a 400."""
    # contains() narrows the candidates on the PBX; the legacy rule is applied here (V20-API-NOTES §c).
    rows = ctx.xapi.list("Contacts", filter=odata.any_of(*(odata.contains(f, num) for f in NUMBER_FIELDS)),
                         select=",".join(("Id", *NUMBER_FIELDS)))
    ids = {int(row["Id"]) for row in rows
           if any(is_match(str(row.get(f) or ""), num, min_len) for f in NUMBER_FIELDS)}
    return {"id": sorted(ids)}


@command("contact.new", write=True, **_CONTACT_PARAMS)
def contact_new(ctx: Services, firstname: str | None, lastname: str | None, company: str | None,
                phone: str | None, data0: str | None, data1: str | None, data2: str | None,
                data3: str | None, data4: str | None, data5: str | None, data6: str | None,
                data7: str | None, data8: str | None, data9: str | None) -> dict[str, Any]:
    """Create a phonebook contact from firstname, lastname, company, phone and data0-data9.

    Difference on v20: data2 (Home2) and data8 (Homefax) have no v20 field and are dropped.
    """
    body = _v20_fields(dict(locals()))  # the legacy parameters, by name
    created = ctx.xapi.post("/Contacts", body) or {}
    logger.info("contact %s created", created.get("Id"))
    return {"id": int(created["Id"])}


@command("contact.del", write=True, id=Integer(minimum=1))
def contact_del(ctx: Services, id: int) -> dict[str, Any]:
    """Delete phonebook contact `id`."""
    with _existing(id):
        ctx.xapi.delete(f"/Contacts({id})")
    logger.info("contact %s deleted", id)
    return answers.result("Delete contact")


@command("contact.update", write=True, id=Integer(minimum=1), **_CONTACT_PARAMS)
def contact_update(ctx: Services, id: int, firstname: str | None, lastname: str | None,
                   company: str | None, phone: str | None, data0: str | None, data1: str | None,
                   data2: str | None, data3: str | None, data4: str | None, data5: str | None,
                   data6: str | None, data7: str | None, data8: str | None, data9: str | None) -> dict[str, Any]:
    """Change the given fields of contact `id` (same fields as contact.new; others stay).

    Difference on v20: data2 (Home2) and data8 (Homefax) have no v20 field and are dropped.
    """
    body = _v20_fields(dict(locals()))  # the legacy parameters, by name
    with _existing(id):
        if body:
            ctx.xapi.patch(f"/Contacts({id})", body)
        else:  # nothing to change; still answer 404 for an unknown id
            ctx.xapi.get(f"/Contacts({id})", {"$select": "Id"})
    logger.info("contact %s updated: %s", id, ",".join(body))
    return answers.result("Update contact")


@command("contact.get", id=Integer(minimum=1))
def contact_get(ctx: Services, id: int) -> dict[str, Any]:
    """Contact `id` with 004's keys.

    Difference on v20: crmContactData, data2 (Home2) and data8 (Homefax) are always "".
    """
    with _existing(id):
        row = ctx.xapi.get(f"/Contacts({id})")
    value = {name: str(row.get(field) or "") if field else "" for name, field in FIELDS.items()}
    return {"name": value["firstname"], "lastName": value["lastname"], "company": value["company"],
            "crmContactData": "", "tag": str(row.get("Tag") or ""), "phone": value["phone"],
            **{f"data{i}": value[f"data{i}"] for i in range(10)}}
