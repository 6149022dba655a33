"""Logging: human or JSON lines, and API keys scrubbed from every part of a record."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from selfinstruct_async.observe.logs import (
    LOGGER,
    REDACTED,
    Redactor,
    configure_logging,
    redact,
    url_secrets,
)

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


@pytest.mark.parametrize("json_lines", [False, True])
def test_user_and_password_in_any_url_never_reach_the_log(
    stream: io.StringIO, json_lines: bool
) -> None:
    configure_logging(verbose=False, json_lines=json_lines, stream=stream, environ={})
    url = "http://user:pw@127.0.0.1:9/v1"  # short: only the URL's shape gives it away
    logger = logging.getLogger(f"{LOGGER}.http_client")
    logger.warning("cannot reach %s", url, extra={"endpoint": f"https://tok3n@h.example/v1 {url}"})
    try:
        raise ConnectionError(f"refused by {url}/completions")
    except ConnectionError:
        logger.exception("request failed")
    text = stream.getvalue()
    assert "user:pw" not in text and "tok3n" not in text
    assert text.count(f"http://{REDACTED}@127.0.0.1:9/v1") >= 3  # message, extra, traceback
    assert f"https://{REDACTED}@h.example/v1" in text


def test_a_password_holding_an_at_sign_is_redacted_whole() -> None:
    text = "refused by http://reader:p@ss@host.test/v1 and https://tok@h2.test (a@b.example)"
    assert Redactor()(text) == (
        f"refused by http://{REDACTED}@host.test/v1 and https://{REDACTED}@h2.test (a@b.example)"
    )


def test_credentials_from_a_url_are_redacted_in_any_form_they_are_quoted() -> None:
    secrets = url_secrets("http://reader:hunter2%40home@ep.test/v1")
    redactor = Redactor(secrets)
    text = "auth hunter2@home (sent as hunter2%40home) for reader:hunter2@home"
    assert redactor(text) == f"auth {REDACTED} (sent as {REDACTED}) for {REDACTED}"
    assert url_secrets("http://ep.test/v1") == [] and url_secrets("not a url") == []


def test_redact_scrubs_text_printed_outside_logging_with_the_configured_secrets(
    stream: io.StringIO,
) -> None:
    configure_logging(
        verbose=False, json_lines=False, stream=stream, secret_env=["K"], environ={"K": SECRET}
    )
    line = f"error: {SECRET} refused at http://me:hunter2hunter2@host/v1 (mail a@b.example)"
    assert redact(line) == (
        f"error: {REDACTED} refused at http://{REDACTED}@host/v1 (mail a@b.example)"
    )


def test_a_log_stream_whose_reader_went_away_is_silenced_and_logging_goes_on(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `selfinstruct run ... 2>&1 | head -1` once head has exited
    with open(write_end, "w", encoding="utf-8") as dead:
        configure_logging(verbose=False, json_lines=False, stream=dead, environ={})
        logger = logging.getLogger(f"{LOGGER}.runner")
        for n in range(3):
            logger.warning("line %d", n)  # must neither raise nor complain anywhere
        assert capsys.readouterr().err == ""  # no "--- Logging error ---" per record
        # The descriptor now leads to /dev/null: the exit-time flush cannot fail either.
        assert os.fstat(write_end).st_rdev == os.stat(os.devnull).st_rdev
        dead.write("late\n")
        dead.flush()


def test_a_stream_closed_under_the_handler_stops_it_quietly(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = io.StringIO()
    configure_logging(verbose=False, json_lines=False, stream=closed, environ={})
    closed.close()
    logging.getLogger(LOGGER).warning("nobody will read this")
    logging.getLogger(LOGGER).warning("nor this")
    assert capsys.readouterr().err == ""
