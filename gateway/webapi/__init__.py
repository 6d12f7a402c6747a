"""The legacy /webapi/<key>/<command> surface."""
