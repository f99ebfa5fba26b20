"""``redact``: URLs in messages, logs and plugin payloads show no password or secret
query parameter, and are otherwise as the user wrote them."""

from __future__ import annotations

import pytest

from dtf.config import redact


def test_the_password_of_the_user_part_is_hidden():
    assert redact("postgresql://dtf:s3cret@db:5432/dtf") == "postgresql://dtf:***@db:5432/dtf"
    assert redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact("amqp://guest:p@ss@mq/vh") == "amqp://guest:***@mq/vh"


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "sslpassword", "db_password", "passwd", "pwd", "token",
     "access_token", "x-amz-security-token", "secret", "client_secret", "api_key", "apikey",
     "AccessKey", "credentials", "signature", "sig", "key", "auth", "private_key"],
)  # fmt: skip
def test_secret_query_parameters_are_hidden(key):
    url = f"postgresql+psycopg2://dtf@db/dtf?sslmode=require&{key}=s3cret&application_name=ci"
    assert redact(url) == (
        f"postgresql+psycopg2://dtf@db/dtf?sslmode=require&{key}=***&application_name=ci"
    )


def test_a_secret_first_last_or_alone_in_the_query_is_hidden():
    assert redact("pg://db/dtf?password=a&user=u") == "pg://db/dtf?password=***&user=u"
    assert redact("pg://db/dtf?user=u&password=a") == "pg://db/dtf?user=u&password=***"
    assert redact("redis://cache/0?token=a%20b") == "redis://cache/0?token=***"
    assert redact("redis://cache/0?x=1;token=a") == "redis://cache/0?x=1;token=***"


def test_both_places_at_once():
    assert redact("postgresql://u:one@db/dtf?sslpassword=two") == (
        "postgresql://u:***@db/dtf?sslpassword=***"
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "sqlite:////home/me/.dtf/dtf.sqlite",
        "postgresql://u@db/dtf?sslmode=verify-full&sslkey=/etc/k.pem&keyword=x&connect_timeout=5",
        "filesystem://",
        "postgresql://u:@db/dtf",
    ],
)
def test_a_url_without_secrets_is_unchanged(url):
    assert redact(url) == url


def test_a_url_that_does_not_parse_is_still_redacted():
    assert redact("postgresql://u:s3cret@[::1/dtf?password=x") == (
        "postgresql://u:***@[::1/dtf?password=***"
    )
