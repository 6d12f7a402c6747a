"""Logging: one line per event on stdout, and the one filter that keeps secrets out of every line.

`RedactingFilter` replaces the configured secrets (access key, client secret, webhook secret),
anything shaped like a JWT or a bearer token, a recording link's `sig=` value and the key segment
of any `/webapi/<key>/` path. It also escapes control characters (CR, LF, NUL, ...) in every message,
so a request path such as `/x%0a2026-11-30 ... CRITICAL` cannot forge a second log line, and folds
a traceback into the same line.
`setup_logging` puts it on the root handlers and on Werkzeug's and gunicorn's loggers and handlers;
`ACCESS_LOG_FORMAT` is gunicorn's access line, which names the path without its query string.
"""
from __future__ import annotations

import logging
import re
import sys
from typing import Iterable

logger = logging.getLogger(__name__)

MASK = "***"

# gunicorn access atoms: remote address, method, path without the query (a query can carry
# ext.update's authpass or vmpin), status, bytes, duration in ms. The filter redacts the key in %(U)s.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers that do not (only) propagate to the root logger: their own handlers need the filter too.
FOREIGN_LOGGERS = ("werkzeug", "gunicorn.error", "gunicorn.access")

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
# The segment after /webapi/ in a URL is the access key. Kept readable: the recording download
# path /webapi/recording/<file>.mp3, and this project's own source paths in tracebacks
# (gateway/webapi/route.py, gateway/webapi/commands/...).
_WEBAPI_KEY = re.compile(r"(/webapi/)([^/?#\s\"']+)")
_NOT_KEYS = frozenset({"recording", "commands", "data", "__pycache__"})
# A recording link's signature: whoever holds it may download the file until it expires.
_SIG = re.compile(r"(?i)\b(sig=)[^&\s\"'#]+")
# C0 controls, DEL, C1 controls (NEL included) and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

_HANDLER_MARK = "_gateway_stdout"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret, JWT, bearer token and /webapi/<key>/ segment replaced by ***."""
    # Longest first, so a secret that contains another is masked whole.
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, MASK)
    # Each pattern runs only where its fixed part occurs (most lines hold none of them).
    if "eyJ" in text:
        text = _JWT.sub(MASK, text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    if "sig=" in lowered:
        text = _SIG.sub(lambda m: m.group(1) + MASK, text)
    if "/webapi/" in text:
        text = _WEBAPI_KEY.sub(_mask_key, text)
    return text


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (\\n, \\r, \\t, \\x00, \\u2028)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _ESCAPES:
        return _ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def one_line(text: str) -> str:
    """A multi-line text (a traceback) as one line: lines joined by " | ", other controls escaped."""
    return " | ".join(escape_controls(line) for line in text.splitlines() if line.strip())


def _mask_key(match: re.Match[str]) -> str:
    segment = match.group(2)
    if segment in _NOT_KEYS or segment.endswith((".py", ".pyc")):
        return match.group(0)
    return match.group(1) + MASK


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and traceback text with `redact`; never drops a record.

    The message's control characters are escaped and the traceback is folded into one line, so every
    handler (gunicorn's own included, whatever its format) writes one line per record.
    Safe to run twice on one record (a logger and a handler may both carry it).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]
        self._formatter = logging.Formatter()

    def add_secret(self, value: str) -> None:
        """Also redact `value` from now on (for example a secret learned after startup)."""
        if value and value not in self._secrets:
            self._secrets.append(value)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show the raw parts, still redacted
            message = f"{record.msg!r} {record.args!r}"
        cleaned = escape_controls(redact(message, self._secrets))
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = one_line(redact(record.exc_text, self._secrets))
        if record.stack_info:
            record.stack_info = one_line(redact(record.stack_info, self._secrets))
        return True


class OneLineFormatter(logging.Formatter):
    """LINE_FORMAT with tracebacks and multi-line messages folded into the same line (" | ")."""

    def __init__(self) -> None:
        super().__init__(LINE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return " | ".join(line for line in super().format(record).splitlines() if line.strip())


def install(redactor: RedactingFilter, logger_names: Iterable[str] = FOREIGN_LOGGERS) -> None:
    """Put `redactor` on every root handler and on the named loggers and their handlers."""
    targets: list[logging.Filterer] = list(logging.getLogger().handlers)
    for name in logger_names:
        named = logging.getLogger(name)
        targets.append(named)
        targets.extend(named.handlers)
    for target in targets:
        if redactor not in target.filters:
            target.addFilter(redactor)


def setup_logging(level: str, secrets: Iterable[str]) -> RedactingFilter:
    """Log at `level` to stdout, one line per event, with `secrets` redacted everywhere.

    Calling it again replaces the stdout handler it added before. Returns the filter so callers
    can `add_secret` later.
    """
    # No line format here or in gunicorn's shows the thread or the caller's file and line: records
    # skip looking them up (the logging HOWTO's "Optimization"; a record costs a quarter less).
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(OneLineFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    redactor = RedactingFilter(secrets)
    install(redactor)
    logger.debug("logging at %s to stdout", level.upper())
    return redactor
