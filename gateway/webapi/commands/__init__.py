"""One module per legacy command prefix; importing them fills `registry.REGISTRY`."""

from gateway.webapi.commands import (  # noqa: F401  (import registers the commands)
    pbx,
    lists,
    extensions,
    groups,
    queues,
    contacts,
    calls,
    maintenance,
)
