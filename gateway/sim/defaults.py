"""The simulated PBX's default content: extensions, queues, ring groups, IVRs, trunks, phonebook.

Tests and `3cx-gateway simulate` start from `default_directory()`; its numbers are the ones the
scenario tables and docs/v20-call-flows.md use (trunk 10000, DID +420233000111 "PragueDID", ...).
"""
from __future__ import annotations

import hashlib
import logging
import unicodedata

from gateway.sim.model import (ApiClient, Contact, Department, Device, Directory, ForwardingProfile,
                               InboundRule, Ivr, Queue, RingGroup, Trunk, User)

logger = logging.getLogger(__name__)

PROFILE_NAMES = ("Available", "Away", "Out of office", "Custom 1", "Custom 2")
API_CLIENT_ID = "900"
API_CLIENT_SECRET = "sim-secret-900"

_PEOPLE = (  # extension 100 upwards
    ("Alena", "Bartošová"), ("Jan", "Novák"), ("Petra", "Svobodová"), ("Tomáš", "Dvořák"), ("Eva", "Černá"),
    ("Martin", "Procházka"), ("Lucie", "Kučerová"), ("Pavel", "Veselý"), ("Jana", "Horáková"),
    ("Jakub", "Němec"), ("Tereza", "Marková"), ("Lukáš", "Pokorný"), ("Kateřina", "Pospíšilová"),
    ("David", "Hájek"), ("Veronika", "Králová"), ("Ondřej", "Jelínek"), ("Michaela", "Růžičková"),
    ("Filip", "Beneš"), ("Anna", "Fialová"), ("Adam", "Sedláček"), ("Barbora", "Doležalová"),
    ("Vojtěch", "Zeman"), ("Klára", "Kolářová"), ("Daniel", "Navrátil"), ("Markéta", "Čermáková"),
    ("Michal", "Urban"), ("Zuzana", "Vaněk"), ("Roman", "Blažek"), ("Hana", "Kříž"),
    ("Josef", "Kovář"),
)
_USER_AGENTS = ("3CX Mobile Client", "3CX WebRTC proxy", "Yealink SIP-T46U", "Yealink SIP-T54W",
                "Fanvil X6U", "3CX Windows App")
_SALES, _SUPPORT = ("101", "102", "106"), ("103", "104", "105")


def default_directory() -> Directory:
    """A fresh PBX with the default content (a new, independent object on every call)."""
    directory = Directory()
    _add_departments(directory)
    for index, (first, last) in enumerate(_PEOPLE):
        _add_user(directory, str(100 + index), first, last, index)
    _add_call_targets(directory)
    _add_trunks(directory)
    _add_contacts(directory)
    monitored = sorted(directory.users) + sorted(directory.queues) + sorted(directory.ring_groups) \
        + sorted(directory.ivrs)
    directory.api_clients[API_CLIENT_ID] = ApiClient(client_id=API_CLIENT_ID, secret=API_CLIENT_SECRET,
                                                     monitored=monitored, role="system_owners")
    return directory


def default_profiles(directory: Directory) -> list[ForwardingProfile]:
    """The five forwarding profiles every v20 extension has, with fresh ids."""
    return [ForwardingProfile(id=directory.new_id(), name=name) for name in PROFILE_NAMES]


def device_id(number: str, seed: str) -> str:
    """A SIP contact URI as v20 shows it, with a stable 16-hex-digit rinstance."""
    rinstance = hashlib.sha1(f"{number}/{seed}".encode()).hexdigest()[:16]
    return f"sip:{number}@127.0.0.1:{5060 + int(number) % 1000 * 7};rinstance={rinstance}"


def _add_departments(directory: Directory) -> None:
    for number, name, is_default in (("GRP0000", "DEFAULT", True), ("GRP0001", "Sales", False),
                                     ("GRP0002", "Support", False)):
        department = Department(id=directory.new_id(), number=number, name=name, is_default=is_default)
        directory.departments[department.id] = department


def _add_user(directory: Directory, number: str, first: str, last: str, index: int) -> None:
    ascii_last = unicodedata.normalize("NFKD", last).encode("ascii", "ignore").decode().lower()
    user = User(id=directory.new_id(), number=number, first_name=first, last_name=last,
                email=f"{first[0].lower()}.{ascii_last}@example.com",
                mobile=f"+420{610 + index}{100 + index * 7:03d}{200 + index * 3:03d}",
                auth_id=f"{number}auth", auth_password=f"pw{number}x", sip_id="",
                record_calls=number in ("101", "102", "103", "104", "105"),
                record_external_only=number in ("106", "107"),
                vm_pin=f"{int(number) * 7 % 10000:04d}")
    user.profiles = default_profiles(directory)
    if int(number) < 120:
        count = 2 if index % 3 == 1 else 1
        user.devices = [Device(device_id=device_id(number, str(n)),
                               user_agent=_USER_AGENTS[(index + n + 1) % len(_USER_AGENTS)])
                        for n in range(count)]
        if number in ("101", "102"):
            user.devices[0] = Device(device_id=device_id(number, "uacsta"), user_agent="Yealink SIP-T46U",
                                     direct_control=True)
    for department in directory.departments.values():
        if department.is_default or number in (_SALES if department.name == "Sales" else
                                               _SUPPORT if department.name == "Support" else ()):
            is_manager = number == "101" and not department.is_default
            department.members[number] = "managers" if is_manager else "users"
            user.department_ids.append(department.id)
    directory.users[number] = user


def _add_call_targets(directory: Directory) -> None:
    for number, name, strategy, agents, managers in (
            ("800", "Sales", "RingAll", ["101", "102"], []),
            ("801", "Support", "Hunt", ["103", "104", "105"], ["101"]),
            ("802", "Billing", "HuntRandomStart", ["104", "106"], [])):
        directory.queues[number] = Queue(id=directory.new_id(), number=number, name=name,
                                         polling_strategy=strategy, agents=agents, managers=managers)
    for number, name, strategy, members in (("700", "Reception", "RingAll", ["101", "102"]),
                                            ("701", "Back office", "Hunt", ["103", "104"])):
        directory.ring_groups[number] = RingGroup(id=directory.new_id(), number=number, name=name,
                                                  ring_strategy=strategy, members=members)
    for number, name, timeout_dn in (("600", "Main menu", "800"), ("601", "After hours", "101")):
        directory.ivrs[number] = Ivr(id=directory.new_id(), number=number, name=name,
                                     prompt=f"ivr{number}.wav", timeout_forward_dn=timeout_dn)


def _add_trunks(directory: Directory) -> None:
    directory.trunks["10000"] = Trunk(id=directory.new_id(), number="10000", name="Provider A",
                                      host="sip.provider-a.example", external_number="+420233000111",
                                      did_numbers=["+420233000111", "+420233000112"])
    directory.trunks["10001"] = Trunk(id=directory.new_id(), number="10001", name="Provider B",
                                      host="sip.provider-b.example", external_number="+420543000200",
                                      did_numbers=["+420543000200"], simultaneous_calls=4)
    directory.inbound_rules += [
        InboundRule(id=directory.new_id(), name="PragueDID", did="+420233000111", trunk_number="10000",
                    destination="800"),
        InboundRule(id=directory.new_id(), name="BrnoDID", did="+420233000112", trunk_number="10000",
                    destination="101"),
    ]


def _add_contacts(directory: Directory) -> None:
    for fields in (
            dict(first_name="John", last_name="O'Brien", company="Shamrock Trading", phone="+353861234567",
                 email="john.obrien@shamrock.example"),
            dict(first_name="Alice", last_name="Walker", company="Acme s.r.o.", phone="+420774852529",
                 business="+420222111000", email="alice@acme.example"),
            dict(first_name="Karel", last_name="Malý", company="Malý a syn", phone="+420602111222",
                 home="0044 20 7946 0958"),
            dict(first_name="Marie", last_name="Velká", company="Acme s.r.o.", phone="602333444",
                 mobile2="+420 603 555 666"),
            dict(first_name="Hans", last_name="Müller", company="Müller GmbH", business="+49 30 1234567",
                 business_fax="+49 30 1234568"),
            dict(first_name="Sophie", last_name="Martin", company="Tour Eiffel SA", phone="+33612345678",
                 business2="+33 1 44 55 66 77"),
            dict(first_name="Piotr", last_name="Nowak", company="Polbud", phone="+48501234567",
                 pager="12345"),
            dict(first_name="Emma", last_name="Smith", company="", phone="(020) 7946-0000", other="*31#"),
            dict(first_name="Lars", last_name="Jensen", company="Nordic ApS", phone="+4520123456",
                 tag="VIP"),
            dict(first_name="", last_name="", company="Pizza Roma", business="+420222333444"),
    ):
        contact = Contact(id=directory.new_id(), **fields)
        directory.contacts[contact.id] = contact
