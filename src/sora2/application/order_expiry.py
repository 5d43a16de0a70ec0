"""The sweep that expires unpaid orders, inside every running `sora2 serve` and `worker`.

No cron: each process looks every few seconds for PENDING orders older than
ORDER_EXPIRES_IN (`Orders.expire_due`, which first asks the provider whether the payment
went through). Several processes sweeping at once is harmless: an order's version check
lets one expiry win, and the others find it CANCELLED and record nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sora2.application.orders import Orders

log = logging.getLogger("sora2.orders")


def sweep_interval(expires_in: timedelta) -> float:
    """A quarter of the lifetime, between half a second and a minute: an order is
    cancelled at most that late, and a long lifetime does not mean a busy loop."""
    return min(60.0, max(0.5, expires_in.total_seconds() / 4))


class OrderExpiry:
    def __init__(self, orders: Orders, interval: float | None = None) -> None:
        self.orders = orders
        self.interval = interval or sweep_interval(orders.expires_in)
        self.sweeps = 0  # finished sweeps: operators (and tests) see it alive
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="order-expiry", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if expired := self.orders.expire_due():
                    log.info("%d unpaid order(s) expired", expired)
            except Exception:  # the database or a provider is down: try again next time
                log.warning("the order expiry sweep failed; retrying", exc_info=True)
            self.sweeps += 1
