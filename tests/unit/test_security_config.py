"""Transport security settings reach the clients as intended, and secrets never show.

Kafka: SASL_SSL and TLS settings become librdkafka properties, and librdkafka itself
accepts them (a client is built with no bootstrap server, so nothing connects).
Redis: a `rediss://` REDIS_URL gives the redis-py client the service builds a TLS
connection with certificate and host-name checks and the URL's credentials.
Settings: repr, str and JSON dumps never reveal a secret.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from typing import Any

import certifi
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, SSLConnection

from chater_gpt.config import Settings, load_settings, secret_values
from chater_gpt.errors import ConfigError
from chater_gpt.service import ServiceParts
from chater_gpt.wiring import build_parts

SASL_PASSWORD = "kafka-SASL-pw-5c1e9b"
SSL_KEY_PASSWORD = "kafka-SSLKEY-pw-77d2a0"
REDIS_PASSWORD = "redis-AUTH-pw-0b9f3e"
API_KEY = "sk-test-SECURITY-CONFIG-41a7d6"
KOBOLD_KEY = "kobold-KEY-93cc21"
SENTRY_DSN = "https://public-SENTRY-e81f@sentry.example/42"
SECRETS = (SASL_PASSWORD, SSL_KEY_PASSWORD, REDIS_PASSWORD, API_KEY, KOBOLD_KEY, SENTRY_DSN)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the overrides of each test configure it, never the developer's shell."""
    ours = {name.upper() for name in Settings.model_fields}
    for name in list(os.environ):
        if name.upper() in ours:
            monkeypatch.delenv(name)


def secure_settings(**overrides: Any) -> Settings:
    """Every secret-bearing setting filled with a recognisable value."""
    return load_settings(
        {
            "bootstrap_server": "kafka-1.example:9093,kafka-2.example:9093",
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "chater-gpt",
            "kafka_sasl_password": SASL_PASSWORD,
            "kafka_ssl_ca_location": certifi.where(),
            "openai_api_key": API_KEY,
            "koboldcpp_api_key": KOBOLD_KEY,
            "redis_url": f"rediss://chater:{REDIS_PASSWORD}@cache.example:6380/2",
            "sentry_dsn": SENTRY_DSN,
            **overrides,
        }
    )


def without_bootstrap(conf: dict[str, Any]) -> dict[str, Any]:
    """librdkafka builds a client with no bootstrap server and then connects nowhere."""
    return {k: v for k, v in conf.items() if k != "bootstrap.servers"}


# --- Kafka -----------------------------------------------------------------------------


def test_sasl_ssl_settings_become_the_librdkafka_properties() -> None:
    conf = secure_settings().kafka_common_config()
    assert conf == {
        "bootstrap.servers": "kafka-1.example:9093,kafka-2.example:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "chater-gpt",
        "sasl.password": SASL_PASSWORD,
        "ssl.ca.location": certifi.where(),
    }


def test_mutual_tls_settings_become_the_librdkafka_properties() -> None:
    conf = secure_settings(
        kafka_security_protocol="SSL",
        kafka_sasl_mechanism=None,
        kafka_sasl_username=None,
        kafka_sasl_password=None,
        kafka_ssl_certificate_location="/etc/kafka/client.pem",
        kafka_ssl_key_location="/etc/kafka/client.key",
        kafka_ssl_key_password=SSL_KEY_PASSWORD,
    ).kafka_common_config()
    assert conf == {
        "bootstrap.servers": "kafka-1.example:9093,kafka-2.example:9093",
        "security.protocol": "SSL",
        "ssl.ca.location": certifi.where(),
        "ssl.certificate.location": "/etc/kafka/client.pem",
        "ssl.key.location": "/etc/kafka/client.key",
        "ssl.key.password": SSL_KEY_PASSWORD,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_librdkafka_accepts_the_sasl_ssl_configuration(mechanism: str) -> None:
    # The same dict the service hands to its producer and consumer: an unknown property,
    # an unsupported mechanism or an unreadable CA file would raise here.
    conf = without_bootstrap(secure_settings(kafka_sasl_mechanism=mechanism).kafka_common_config())
    producer = Producer({**conf, "enable.idempotence": True})
    producer.flush(0)
    consumer = Consumer({**conf, "group.id": "chater-gpt-group"})
    consumer.close()


def test_librdkafka_refuses_a_ca_file_that_does_not_exist() -> None:
    # Proves the acceptance test above really validates the TLS settings.
    conf = secure_settings(kafka_ssl_ca_location="/nonexistent/ca.pem").kafka_common_config()
    with pytest.raises(KafkaException, match=r"ssl\.ca\.location"):
        Producer(without_bootstrap(conf))


def test_extra_config_adds_librdkafka_properties() -> None:
    conf = secure_settings(
        kafka_extra_config={"ssl.endpoint.identification.algorithm": "https"}
    ).kafka_common_config()
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert conf["security.protocol"] == "SASL_SSL"


def test_client_specific_properties_reach_only_their_client() -> None:
    # librdkafka warns (CONFWARN) about a consumer property given to a producer.
    settings = secure_settings(
        kafka_extra_config={"client.id": "both"},
        kafka_consumer_config='{"fetch.wait.max.ms": "10", "client.id": "reader"}',
        kafka_producer_config={"linger.ms": "2"},
    )
    consumer, producer = settings.kafka_consumer_properties(), settings.kafka_producer_properties()
    assert consumer["fetch.wait.max.ms"] == "10"
    assert "fetch.wait.max.ms" not in producer
    assert producer["linger.ms"] == "2"
    assert "linger.ms" not in consumer
    assert (consumer["client.id"], producer["client.id"]) == ("reader", "both")
    assert consumer["security.protocol"] == producer["security.protocol"] == "SASL_SSL"


def test_secret_looking_client_properties_are_redacted() -> None:
    settings = secure_settings(
        kafka_consumer_config={"sasl.oauthbearer.client.secret": "consumer-hush"},
        kafka_producer_config={"sasl.oauthbearer.client.secret": "producer-hush"},
    )
    assert {"consumer-hush", "producer-hush"} <= set(secret_values(settings))


# --- Redis -----------------------------------------------------------------------------


def new_connection(client: Redis) -> AbstractConnection:
    """A connection as the pool makes it (connecting happens only on first command)."""
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


@pytest.fixture
async def parts() -> AsyncIterator[ServiceParts]:
    """The parts exactly as the service builds them (nothing connects until first use)."""
    built = build_parts(secure_settings())
    yield built
    await built.aclose()


def test_a_rediss_url_gives_a_tls_client_with_its_credentials(parts: ServiceParts) -> None:
    assert parts.stores.client is not None
    pool = parts.stores.client.connection_pool
    assert pool.connection_class is SSLConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6380, 2)
    assert (kwargs["username"], kwargs["password"]) == ("chater", REDIS_PASSWORD)


def test_the_redis_tls_connection_verifies_certificate_and_host_name(
    parts: ServiceParts,
) -> None:
    assert parts.stores.client is not None
    connection = new_connection(parts.stores.client)
    assert isinstance(connection, SSLConnection)
    context = connection.ssl_context.get()  # the ssl.SSLContext used at connect time
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


async def test_redis_tls_options_in_the_url_reach_the_connection() -> None:
    url = (
        f"rediss://:{REDIS_PASSWORD}@cache.example:6380/0"
        f"?ssl_ca_certs={certifi.where()}&ssl_cert_reqs=required"
    )
    built = build_parts(secure_settings(redis_url=url))
    try:
        assert built.stores.client is not None
        kwargs = built.stores.client.connection_pool.connection_kwargs
        assert kwargs["ssl_ca_certs"] == certifi.where()
        assert kwargs["password"] == REDIS_PASSWORD
        connection = new_connection(built.stores.client)
        assert isinstance(connection, SSLConnection)
        assert connection.ssl_context.ca_certs == certifi.where()
    finally:
        await built.aclose()


async def test_a_plain_redis_url_is_not_tls() -> None:
    built = build_parts(secure_settings(redis_url=f"redis://:{REDIS_PASSWORD}@cache:6379/0"))
    try:
        assert built.stores.client is not None
        assert built.stores.client.connection_pool.connection_class is not SSLConnection
    finally:
        await built.aclose()


def test_the_redis_client_repr_hides_the_password(parts: ServiceParts) -> None:
    assert parts.stores.client is not None
    assert REDIS_PASSWORD not in repr(parts.stores.client)


# --- Settings never show a secret --------------------------------------------------------


@pytest.mark.parametrize(
    "render",
    [repr, str, lambda s: s.model_dump_json(), lambda s: str(s.model_dump())],
    ids=["repr", "str", "model_dump_json", "model_dump"],
)
def test_settings_never_render_a_secret(render: Any) -> None:
    settings = secure_settings(kafka_ssl_key_password=SSL_KEY_PASSWORD)
    text = render(settings)
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked
    assert "chater-gpt" in text  # the rendering is real: plain settings do show


def test_the_redis_password_does_not_show_through_its_url_either() -> None:
    text = repr(secure_settings())
    assert "cache.example" not in text  # REDIS_URL is secret as a whole


def test_a_validation_error_never_echoes_a_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        secure_settings(kafka_sasl_mechanism="GSSAPI-NOT-ALLOWED")
    message = caught.value.message
    assert "KAFKA_SASL_MECHANISM" in message
    assert not [secret for secret in SECRETS if secret in message]
