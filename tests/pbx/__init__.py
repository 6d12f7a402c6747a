"""Tests of the 3CX v20 clients (gateway.pbx)."""
