"""Clients for the 3CX v20 APIs: token, XAPI (OData), Call Control REST and WebSocket."""
