"""Server maintenance commands (cfd.reset, csv.reread): v20 offers neither, so both answer 501."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gateway.webapi.errors import NotPossibleOnV20
from gateway.webapi.params import Text
from gateway.webapi.registry import command

if TYPE_CHECKING:
    from gateway.services import Services

logger = logging.getLogger(__name__)


@command("cfd.reset", names=Text(required=False, max_len=1000))
def cfd_reset(ctx: Services, names: str | None) -> dict[str, Any]:
    """Reload Call Flow Designer scripts `names`.

    Not possible on v20: v20 has no API to reload Call Flow Designer scripts.
    """
    raise NotPossibleOnV20("v20's APIs cannot reload Call Flow Designer apps; "
                           "redeploy the app from the 3CX admin console instead")


@command("csv.reread")
def csv_reread(ctx: Services) -> dict[str, Any]:
    """Re-read the legacy product's CSV files.

    Not possible on v20: v20 has no CSV re-read; the phonebook is managed through contact.*.
    """
    raise NotPossibleOnV20("v20 has no API to re-read a CSV file; import contacts in the 3CX admin "
                           "console or create them with contact.new")
