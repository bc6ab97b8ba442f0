"""
Checks of the production configuration: PostgreSQL and channels-redis on
127.0.0.1. scripts/test runs the suite a second time with DEMO_POSTGRES_DB
and DEMO_REDIS_URL set, and these tests confirm that second pass really
talks to both servers.
"""

import os

import pytest
from channels.layers import get_channel_layer
from django.db import connection

pytestmark = pytest.mark.production


def test_database_is_postgresql():
    assert os.environ.get("DEMO_POSTGRES_DB"), "DEMO_POSTGRES_DB is not set"
    assert connection.vendor == "postgresql"


async def test_redis_layer_carries_messages_between_instances():
    from channels_redis.core import RedisChannelLayer

    url = os.environ["DEMO_REDIS_URL"]
    sender = RedisChannelLayer(hosts=[url])
    receiver = RedisChannelLayer(hosts=[url])
    channel = await receiver.new_channel()
    await sender.group_add("offload-production-check", channel)
    await sender.group_send(
        "offload-production-check", {"type": "check.message", "n": 7}
    )
    message = await receiver.receive(channel)
    assert message == {"type": "check.message", "n": 7}
    await sender.group_discard("offload-production-check", channel)
    await sender.flush()


def test_configured_layer_is_redis():
    layer = get_channel_layer()
    assert type(layer).__module__ == "channels_redis.core"
