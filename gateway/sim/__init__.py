"""A 3CX v20 simulator: XAPI, Call Control REST and WebSocket on one port, driven by one model.

It imports nothing from the rest of `gateway`, so a misreading of v20 cannot hide on both sides.
"""
