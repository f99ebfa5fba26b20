"""TLS to the broker and result backend is verified unless a URL says otherwise."""

from __future__ import annotations

import ssl

import pytest

from dtf.config import load_settings, redact, verified_tls

REQUIRED = {"ssl_cert_reqs": ssl.CERT_REQUIRED}


@pytest.mark.parametrize(
    "url",
    [
        "rediss://redis.example.com:6380/0",
        "rediss://dtf:s3cret@redis.example.com:6380/0?ssl_ca_certs=/etc/dtf/ca.pem",
    ],
)
def test_a_rediss_url_without_ssl_cert_reqs_requires_a_valid_certificate(url):
    assert verified_tls(url) == REQUIRED


@pytest.mark.parametrize("value", ["required", "CERT_REQUIRED", "optional", "none"])
def test_a_rediss_url_that_says_ssl_cert_reqs_is_taken_as_written(value):
    url = f"rediss://redis.example.com:6380/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs={value}"
    assert verified_tls(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis.example.com:6379/0",
        "amqps://dtf:s3cret@mq.example.com:5671//",
        "filesystem://",
        "db+postgresql+psycopg2://db/dtf?sslmode=verify-full",
    ],
)
def test_other_urls_get_no_tls_settings_from_dtf(url):
    assert verified_tls(url) is None


def test_a_rediss_broker_is_also_the_result_backend_with_its_tls_parameters():
    url = "rediss://dtf:s3cret@redis.example.com:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"
    settings = load_settings({"DTF_BROKER_URL": url})
    assert not settings.embedded
    assert settings.result_backend == url
    assert settings.broker_transport_options["priority_steps"] == list(range(10))


def test_tls_urls_are_redacted_to_their_password_only():
    tls = "?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"
    assert redact(f"rediss://dtf:s3cret@redis:6380/0{tls}") == f"rediss://dtf:***@redis:6380/0{tls}"
    assert redact(
        "postgresql+psycopg2://dtf:pw@db:5432/dtf?sslmode=verify-full&sslrootcert=/ca.pem"
        "&sslpassword=keypass"
    ) == (
        "postgresql+psycopg2://dtf:***@db:5432/dtf?sslmode=verify-full&sslrootcert=/ca.pem"
        "&sslpassword=***"
    )
