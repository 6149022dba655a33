"""Logging for the ``selfinstruct`` command: human lines or JSON lines, never an API key.

:func:`configure_logging` installs one handler on the ``selfinstruct_async`` logger.
Every record it emits passes :class:`RedactSecrets` first, which replaces the values of
the environment variables that hold keys (``OPENAI_API_KEY`` and whatever
``api_key_env`` names), anything shaped like a key (``sk-...``, ``Bearer ...``) and the
user information of any URL (``http://user:password@host``) in the message, its
arguments, extra fields and formatted tracebacks. :func:`redact` applies the same rules to
text printed outside logging (the command's final error line).

:class:`Redactor` is the one implementation of those rules: the HTTP client scrubs its
error messages and log lines with one too, knowing its endpoints' keys and any
credentials written into a ``base_url`` (:func:`url_secrets`).

Logging never stops a run: a stream that fails (its reader went away: ``| head -1``, a
closed terminal, a full disk) is written to no more, and its file descriptor is pointed at
``/dev/null`` (:func:`silence_broken_stream`) so that the interpreter's last flush does
not complain either.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import unquote

LOGGER = "selfinstruct_async"
REDACTED = "[redacted]"
DEFAULT_SECRET_ENV = ("OPENAI_API_KEY",)
# Values shorter than this are not treated as secrets: redacting "1" or "true" everywhere
# would mangle every message and protect nothing. (In a URL, credentials of any length
# are caught by their place: see the last pattern.)
_MIN_SECRET_LENGTH = 8
_KEY_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?<=Bearer )[A-Za-z0-9._~+/\-]{8,}=*", re.IGNORECASE),
    # user:password@ in a URL: the configuration refuses it, but a URL can reach a log
    # line by other ways (an exception's text, a redirect, a plugin's message). Up to the
    # host's last "@": a password may hold one ("http://a:b@c@host").
    re.compile(r"(?<=://)[^\s/?#]+(?=@)"),
)
# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_HANDLER_MARK = "_selfinstruct_handler"


class Redactor:
    """Replaces known secret values, key-shaped tokens and URL credentials in text.

    ``secrets`` are the values known to be secret (keys read from the environment, the
    parts of a URL's ``user:password``); those shorter than 8 characters are left alone
    in free text.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a key that contains another is replaced whole.
        self.secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    @classmethod
    def from_env(cls, names: Iterable[str], environ: Mapping[str, str] | None = None) -> Redactor:
        env = os.environ if environ is None else environ
        return cls(env[name] for name in names if env.get(name))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _KEY_PATTERNS:
            text = pattern.sub(REDACTED, text)
        return text

    def value(self, value: Any) -> Any:
        """``value`` with secrets removed from any text inside it (JSON-like structures)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self(str(value))


def url_secrets(url: str) -> list[str]:
    """The credentials written into ``url`` (``user:password@``), in every form quoted.

    Clients send the percent-decoded form (Basic auth), so a message may quote either;
    a :class:`Redactor` given these replaces them wherever they appear, not only in URLs.
    """
    userinfo, at, _ = url.partition("://")[2].partition("/")[0].rpartition("@")
    if not at or not userinfo:
        return []
    password = userinfo.partition(":")[2]
    return sorted({userinfo, password, unquote(userinfo), unquote(password)} - {""})


_active = Redactor.from_env(DEFAULT_SECRET_ENV)


def redact(text: str) -> str:
    """``text`` scrubbed like a log line, with the secrets :func:`configure_logging` knows."""
    return _active(text)


def silence_broken_stream(stream: Any) -> None:
    """Point a failed stream's file descriptor at ``/dev/null``.

    What the Python documentation recommends for a closed pipe: later writes, and the
    flush at interpreter exit, then succeed quietly instead of raising (or printing
    "Exception ignored ... BrokenPipeError"). Streams without a descriptor are left alone.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass  # the descriptor is gone altogether: nothing will be written to it anyway
    finally:
        os.close(devnull)


class RedactSecrets(logging.Filter):
    """Scrub a record's message, arguments and extra fields before any formatter sees it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what we can, scrubbed
            message = f"{record.msg} {record.args}"
        record.msg = self.redactor(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, self.redactor.value(value))
        return True


class HumanFormatter(logging.Formatter):
    """``time LEVEL message key=value...``; tracebacks are scrubbed too."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = extra_fields(record)
        if extra:
            text += " " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in extra.items())
        return self.redactor(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extra fields, exception."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return self.redactor(json.dumps(self.redactor.value(data), default=str))


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Fields passed with ``extra=`` (anything a plain LogRecord does not have)."""
    return {
        k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")
    }


class _SafeStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that stops writing, silently, once its stream fails.

    The default reports each failed record on ``sys.stderr`` (the very stream that failed,
    usually) and tries again on the next one; a log reader that went away must not cost
    the run anything, so the first failure ends this handler's output.
    """

    dead = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.dead:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, BlockingIOError):
            return  # a non-blocking stream that is full for now: lose this line, not the rest
        # ValueError: the stream object was closed under us.
        if isinstance(error, OSError | ValueError):
            self.dead = True
            silence_broken_stream(self.stream)
            return
        super().handleError(record)


class _StderrHandler(_SafeStreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time, so a live display can redirect it."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(
    *,
    verbose: bool,
    json_lines: bool,
    stream: TextIO,
    secret_env: Iterable[str] = DEFAULT_SECRET_ENV,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Send ``selfinstruct_async`` records to ``stream``, scrubbed, as text or JSON lines.

    Calling it again replaces the handler installed before. ``secret_env`` names the
    environment variables holding keys; their values never appear in the output.
    """
    global _active
    logger = logging.getLogger(LOGGER)
    for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(old)
    redactor = Redactor.from_env([*DEFAULT_SECRET_ENV, *secret_env], environ)
    _active = redactor
    handler: logging.Handler
    if stream is sys.stderr or stream is sys.__stderr__:
        handler = _StderrHandler()
    else:
        handler = _SafeStreamHandler(stream)
    handler.addFilter(RedactSecrets(redactor))
    handler.setFormatter(JsonFormatter(redactor) if json_lines else HumanFormatter(redactor))
    setattr(handler, _HANDLER_MARK, True)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
