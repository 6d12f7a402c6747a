"""Tests of the v20 simulator: XAPI, OData, Call Control REST and WebSocket, engine, faults."""
