"""3cx-gateway: the legacy 3CX WebAPI and webhooks on top of the 3CX v20 APIs."""

__version__ = "0.1.0"
