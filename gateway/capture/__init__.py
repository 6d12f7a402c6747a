"""Capture and replay of the PBX traffic the live model consumes (see records.py for the file format)."""
