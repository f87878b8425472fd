"""
Admission control: per-address connection caps and accept-rate limits.

Sans-IO: the caller passes the time.  :class:`Admission` decides, for a
client address that has just become known (after a PROXY header, before any
TLS work), whether the connection may go on; the factory closes the ones it
refuses and counts them by reason (``per_address`` or ``rate``).

Rates are token buckets in the style of SocketTools' ``Throttle`` and of
ranch's ``max_connections`` + rate limiters: a bucket holds at most one
second's worth of tokens (at least one), refills continuously, and each
accepted connection takes one.  Per-address buckets that are full again are
forgotten, so an address that connected once costs nothing later; the table
is pruned when it grows past :data:`PRUNE_AT` entries.
"""

from __future__ import annotations

__all__ = ["PER_ADDRESS", "PRUNE_AT", "PRUNE_EVERY", "RATE", "Admission", "TokenBucket"]

#: Refusal reasons (keys of ``stats()["refused"]``).
PER_ADDRESS = "per_address"
RATE = "rate"

#: Per-address buckets kept before the full (idle) ones are dropped, in a
#: pass made at most every PRUNE_EVERY seconds.
PRUNE_AT = 10_000
PRUNE_EVERY = 1.0


class TokenBucket:
    """``rate`` tokens per second, holding at most ``max(rate, 1)``."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def refill(self, now: float) -> float:
        """Bring the bucket up to ``now``; return the tokens it holds."""
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        # (a clock stepped back restarts the count from now rather than
        # starving the bucket until it catches up)
        self.stamp = now
        return self.tokens

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        if self.refill(now) >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def full(self, now: float) -> bool:
        return self.refill(now) >= self.capacity


class Admission:
    """
    The limits of one server and the state they need.

    :param per_address: most open connections per client address (0: none).
    :param rate: connections per second from everybody (0: no limit).
    :param rate_per_address: connections per second from one address (0: none).
    """

    def __init__(self, per_address: int = 0, rate: float = 0, rate_per_address: float = 0) -> None:
        self.per_address = per_address
        self.rate = rate
        self.rate_per_address = rate_per_address
        self._open: dict[str, int] = {}
        self._global: TokenBucket | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._pruned_at = float("-inf")

    @property
    def active(self) -> bool:
        """Whether any limit is set (else :meth:`admit` always says yes)."""
        return bool(self.per_address or self.rate or self.rate_per_address)

    def configure(self, per_address: int, rate: float, rate_per_address: float) -> None:
        """New limits; they apply to connections admitted from now on."""
        self.per_address = per_address
        if rate != self.rate:
            self._global = None
        self.rate = rate
        if rate_per_address != self.rate_per_address:
            self._buckets.clear()
        self.rate_per_address = rate_per_address

    def admit(self, address: str, now: float) -> str | None:
        """
        Decide for a new connection from ``address``.

        :returns: ``None`` if admitted, else the refusal reason.  With a
            per-address cap set, an admitted connection is counted until
            :meth:`release` is called for it.
        """
        cap = self.per_address
        if cap and self._open.get(address, 0) >= cap:
            return PER_ADDRESS
        if self.rate_per_address:
            bucket = self._buckets.get(address)
            if bucket is None:
                if len(self._buckets) >= PRUNE_AT and now - self._pruned_at >= PRUNE_EVERY:
                    self._prune(now)  # (a whole pass, at most once per PRUNE_EVERY seconds)
                bucket = self._buckets[address] = TokenBucket(self.rate_per_address, now)
            if bucket.refill(now) < 1.0:
                return RATE
        if self.rate:
            if self._global is None:
                self._global = TokenBucket(self.rate, now)
            if not self._global.take(now):
                return RATE
        if self.rate_per_address:
            self._buckets[address].tokens -= 1.0
        if cap:
            self._open[address] = self._open.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        """A connection :meth:`admit` let in has closed."""
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def open_from(self, address: str) -> int:
        """Open admitted connections from ``address``."""
        return self._open.get(address, 0)

    def _prune(self, now: float) -> None:
        self._pruned_at = now
        full = [address for address, bucket in self._buckets.items() if bucket.full(now)]
        for address in full:
            del self._buckets[address]
