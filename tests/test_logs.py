"""Logging: human or JSON lines, and API keys scrubbed from every part of a record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from selfinstruct_async.logs import LOGGER, REDACTED, configure_logging

SECRET = "key-0123456789abcdef-not-a-real-one"
SK_KEY = "sk-proj-AbCdEf0123456789XyZ"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logger = logging.getLogger(LOGGER)
    handlers, level = list(logger.handlers), logger.level
    try:
        yield out
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def log_everywhere(logger: logging.Logger) -> None:
    logger.warning(
        "endpoint refused key %s (also %s)", SECRET, SK_KEY, extra={"header": f"Bearer {SECRET}"}
    )
    try:
        raise RuntimeError(f"401 for {SK_KEY}")
    except RuntimeError:
        logger.exception("request failed")


def test_json_lines_carry_time_level_logger_message_and_extra_fields(stream: io.StringIO) -> None:
    configure_logging(verbose=False, json_lines=True, stream=stream, environ={})
    logging.getLogger(f"{LOGGER}.runner").info("resuming %s", "runs/x", extra={"accepted": 12})
    logging.getLogger(f"{LOGGER}.runner").debug("not shown without --verbose")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "INFO" and record["logger"] == "selfinstruct_async.runner"
    assert record["message"] == "resuming runs/x" and record["accepted"] == 12
    assert record["time"].endswith("+00:00")


@pytest.mark.parametrize("json_lines", [False, True])
def test_keys_from_the_environment_and_key_shaped_tokens_never_reach_the_log(
    stream: io.StringIO, json_lines: bool
) -> None:
    configure_logging(
        verbose=True,
        json_lines=json_lines,
        stream=stream,
        secret_env=["MY_PROVIDER_KEY"],
        environ={"MY_PROVIDER_KEY": SECRET},
    )
    log_everywhere(logging.getLogger(f"{LOGGER}.http_client"))
    text = stream.getvalue()
    assert SECRET not in text and "0123456789abcdef" not in text
    assert SK_KEY not in text and "AbCdEf0123456789" not in text
    assert text.count(REDACTED) >= 4  # message twice, extra field, traceback
    assert "request failed" in text and "RuntimeError" in text


def test_configuring_again_replaces_the_handler_instead_of_doubling_lines(
    stream: io.StringIO,
) -> None:
    configure_logging(verbose=False, json_lines=False, stream=stream, environ={})
    configure_logging(verbose=False, json_lines=False, stream=stream, environ={})
    logging.getLogger(LOGGER).info("once")
    assert stream.getvalue().count("once") == 1
    assert stream.getvalue().rstrip().endswith("INFO once")


def test_short_environment_values_are_not_treated_as_secrets(stream: io.StringIO) -> None:
    configure_logging(
        verbose=False, json_lines=False, stream=stream, secret_env=["X"], environ={"X": "1"}
    )
    logging.getLogger(LOGGER).info("target 100 reached")
    assert "target 100 reached" in stream.getvalue()
