"""Fixed-window (UTC day) submission limits: guests per IP, accounts per plan. Correct across processes:
the counter row is bumped with a conditional UPDATE that cannot pass the limit on SQLite or Postgres."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from imageextract.errors import RateLimited
from imageextract.models import RateCounter


@dataclass(frozen=True)
class RateInfo:
    limit: int
    remaining: int
    reset_at: int  # epoch seconds

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(self.reset_at),
        }


def _window(now: datetime) -> tuple[str, datetime]:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y%m%d"), start + timedelta(days=1)


async def peek(scope: str, limit: int, *, now: datetime | None = None) -> RateInfo:
    now = now or datetime.now(UTC)
    day, end = _window(now)
    row = await RateCounter.filter(bucket=f"{scope}:{day}").first()
    used = row.count if row else 0
    return RateInfo(limit=limit, remaining=limit - used, reset_at=int(end.timestamp()))


async def hit(scope: str, limit: int, *, conn: Any = None, now: datetime | None = None) -> RateInfo:
    """Count one request in `scope` today, or raise RateLimited when the limit is reached."""
    now = now or datetime.now(UTC)
    day, end = _window(now)
    bucket = f"{scope}:{day}"
    reset_at = int(end.timestamp())
    for _ in range(3):
        bumped = await RateCounter.filter(bucket=bucket, count__lt=limit).using_db(conn).update(count=F("count") + 1)
        if bumped:
            row = await RateCounter.filter(bucket=bucket).using_db(conn).first()
            used = row.count if row else limit
            return RateInfo(limit=limit, remaining=limit - used, reset_at=reset_at)
        if await RateCounter.filter(bucket=bucket).using_db(conn).exists():
            retry_after = max(1, reset_at - int(now.timestamp()))
            raise RateLimited(
                f"Rate limit exceeded: {limit} jobs per day. Try again in {retry_after} s.",
                retry_after=retry_after, limit=limit, reset_at=reset_at,
                details={"limit": limit, "window": "day", "scope": scope.split(":", 1)[0]},
            )
        if limit <= 0:
            raise RateLimited("Rate limit exceeded", retry_after=max(1, reset_at - int(now.timestamp())),
                              limit=limit, reset_at=reset_at)
        try:
            await RateCounter.create(bucket=bucket, count=1, window_end=end, using_db=conn)
            return RateInfo(limit=limit, remaining=limit - 1, reset_at=reset_at)
        except IntegrityError:
            continue  # created concurrently: bump it instead
    raise RateLimited("Rate limit exceeded", retry_after=1, limit=limit, reset_at=reset_at)
