"""Hides passwords in MongoDB connection strings, wherever the command line prints text.

:func:`mask_secrets` is the one helper: every line the command line writes
(results, errors, log records through :class:`MaskingFilter`) goes through it.
It replaces the password of any ``scheme://user:password@host`` it finds, and
the values of query options that carry secrets (``password=``,
``authMechanismProperties=AWS_SESSION_TOKEN:...``), with ``***``.
"""

from __future__ import annotations

import logging
import re

__all__ = ["MASK", "MaskingFilter", "mask_secrets"]

MASK = "***"

# user:password@ right after "scheme://". The password runs to the last "@"
# before the host part, so that an unescaped "@" inside it is hidden too.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)(?P<secret>[^\s/?#]*)@")
# Query options that are secrets, as "name=value" up to the next "&", space or quote.
_OPTIONS = re.compile(
    r"(?P<head>\b(?:password|AWS_SESSION_TOKEN|AWS_SECRET_ACCESS_KEY)[=:])(?P<secret>[^&,\s'\"]+)",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """``text`` with every password and secret option in connection strings replaced by ``***``.

    Idempotent; text without connection strings comes back unchanged.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__} {text!r}")
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _OPTIONS.sub(lambda m: f"{m['head']}{MASK}", text)


class MaskingFilter(logging.Filter):
    """A handler filter that masks secrets in each record's final message.

    The record's message is formatted once (``msg % args``), masked, and
    stored back with no arguments, so every formatter downstream sees the
    masked text. The record is never dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message or record.args:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            formatter = logging.Formatter()
            record.exc_text = mask_secrets(formatter.formatException(record.exc_info))
        return True
