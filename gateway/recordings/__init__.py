"""Recordings: fetch the PBX's WAV files, convert to MP3, serve them, delete them when expired."""
