"""Passwords in connection strings never reach the screen or the logs."""

from __future__ import annotations

import io
import logging

import pytest

from mongoelector.cli.masking import MaskingFilter, mask_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mongodb://admin:s3cret@db1:27017/app", "mongodb://admin:***@db1:27017/app"),
        (
            "mongodb+srv://u:p%40ss@cluster0.example.net/?w=1",
            "mongodb+srv://u:***@cluster0.example.net/?w=1",
        ),
        # an unescaped "@" in the password is hidden too
        (
            "cannot reach mongodb://u:p@ss@h1,h2:2/db now",
            "cannot reach mongodb://u:***@h1,h2:2/db now",
        ),
        (
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc",
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:***",
        ),
        ("mongodb://h/db?password=hunter2&w=1", "mongodb://h/db?password=***&w=1"),
        ("'mongodb://a:b@h' and 'mongodb://c:d@k'", "'mongodb://a:***@h' and 'mongodb://c:***@k'"),
    ],
)
def test_secrets_in_connection_strings_are_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert mask_secrets(masked) == masked


@pytest.mark.parametrize(
    "text",
    [
        "mongodb://db1:27017/app",
        "mongodb://user@db1/app",
        "node-1 became leader with token 17 at 12:00:01",
        "http://host:8080/path",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert mask_secrets(text) == text


def test_mask_secrets_takes_text_only() -> None:
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        mask_secrets(b"mongodb://a:b@h")  # type: ignore[arg-type]


def test_log_records_are_masked_in_message_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("mongoelector.test_masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting to %s", "mongodb://u:topsecret@h/db")
        try:
            raise RuntimeError("failed: mongodb://u:topsecret@h/db")
        except RuntimeError:
            logger.exception("giving up")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    text = stream.getvalue()
    assert "connecting to mongodb://u:***@h/db" in text
    assert "RuntimeError: failed: mongodb://u:***@h/db" in text
    assert "topsecret" not in text
