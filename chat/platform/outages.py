"""Log a dependency's outage once when it starts and once when it ends, not once per failed call."""
import logging
import threading


class Outage:
    """The up or down state of one dependency (Redis, the channel layer), as its callers last saw it.

    `errors`, a counter if given, counts every failed call, not only the first of an outage.
    """

    def __init__(self, name, logger, errors=None):
        self.name = name
        self.logger = logger
        self.errors = errors
        self.down = False
        self.lock = threading.Lock()

    def failed(self, error):
        """Note a failed call: a WARNING when it starts an outage, DEBUG while one lasts."""
        if self.errors is not None:
            self.errors.inc()
        with self.lock:
            starts, self.down = not self.down, True
        if starts:
            self.logger.warning("%s is unreachable (%s: %s); retrying quietly until it is back",
                                self.name, type(error).__name__, error)
        else:
            self.logger.debug("%s still unreachable: %r", self.name, error)

    def worked(self):
        """Note a successful call: an INFO when it ends an outage."""
        if not self.down:
            return
        with self.lock:
            ends, self.down = self.down, False
        if ends:
            self.logger.info("%s is reachable again", self.name)
