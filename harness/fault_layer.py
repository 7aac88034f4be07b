"""A pubsub channel layer that loses a share of room messages, as an at-most-once layer may."""
import os
import random

from channels_redis.pubsub import RedisPubSubChannelLayer


class DroppingPubSubLayer(RedisPubSubChannelLayer):
    """Drop each received room message (an event with a seq) with probability CHAT_TEST_DROP_RATE."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop_rate = float(os.environ.get("CHAT_TEST_DROP_RATE", "0"))
        self.dropped = 0

    async def receive(self, channel):
        # Dropping on receive loses a message in one process only, like a lost
        # subscription would; the other processes still deliver it.
        while True:
            message = await self._get_layer().receive(channel)
            if message.get("seq") is None or random.random() >= self.drop_rate:
                return message
            self.dropped += 1
