"""The credit ledger: append-only entries with `balance_after`, and the cached balance kept in step.

Every change of `Account.credits` happens here, in one transaction with its ledger entry, through a
conditional UPDATE (`credits >= n`) that is correct on SQLite and Postgres alike: on Postgres the row
lock taken by the UPDATE serialises concurrent debits until commit; on SQLite the writer lock does.
So the balance can never go negative and the ledger always sums to the balance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from imageextract.context import Context
from imageextract.errors import InsufficientCredits, NotFound, ValidationError
from imageextract.models import Account, LedgerEntry
from imageextract.services.pagination import Page, keyset_page
from imageextract.services.sql import Insert, Statement, Step


async def _apply(
    *,
    account_id: str,
    amount: int,
    entry_type: str,
    job_id: Any = None,
    item_id: Any = None,
    unique_ref: str | None = None,
    note: str | None = None,
    conn: Any = None,
) -> LedgerEntry:
    if conn is None:
        async with in_transaction() as tx:
            return await _apply(
                account_id=account_id, amount=amount, entry_type=entry_type, job_id=job_id,
                item_id=item_id, unique_ref=unique_ref, note=note, conn=tx,
            )
    if unique_ref is not None:
        existing = await LedgerEntry.filter(unique_ref=unique_ref).using_db(conn).first()
        if existing is not None:
            return existing
    balance_after = await _add_credits(conn, account_id, amount)
    if balance_after is None:
        exists = await Account.filter(id=account_id).using_db(conn).exists()
        if not exists:
            raise NotFound("Account not found")
        balance = await balance_of(account_id, conn=conn)
        raise InsufficientCredits(
            f"Insufficient credits: {-amount} needed, {balance} available",
            details={"required": -amount, "available": balance},
        )
    return await LedgerEntry.create(
        account_id=account_id,
        entry_type=entry_type,
        amount=amount,
        balance_after=balance_after,
        job_id=job_id,
        item_id=item_id,
        unique_ref=unique_ref,
        note=note,
        using_db=conn,
    )


_ADD_CREDITS = Statement('UPDATE "accounts" SET "credits"="credits"+:amount WHERE "id"=:id AND "credits">=:floor '
                         'RETURNING "credits"')


async def _add_credits(conn: Any, account_id: str, amount: int) -> int | None:
    """`credits += amount` unless that would go below zero; the new balance, or None when refused. One
    statement (UPDATE ... RETURNING, on SQLite >= 3.35 and Postgres alike) instead of an UPDATE and a read."""
    rows = await _ADD_CREDITS.rows(conn, amount=amount, id=account_id, floor=max(0, -amount))
    return int(rows[0]["credits"]) if rows else None


async def balance_of(account_id: str, *, conn: Any = None) -> int:
    account = await Account.filter(id=account_id).using_db(conn).only("id", "credits").first()
    if account is None:
        raise NotFound("Account not found")
    return int(account.credits)


async def debit(
    *, account_id: str, amount: int, entry_type: str = "job_debit", job_id: Any = None,
    unique_ref: str | None = None, note: str | None = None, conn: Any = None,
) -> LedgerEntry:
    """Take `amount` credits or raise InsufficientCredits; nothing is written on failure."""
    if amount <= 0:
        raise ValidationError("Debit amount must be positive")
    return await _apply(
        account_id=account_id, amount=-amount, entry_type=entry_type, job_id=job_id,
        unique_ref=unique_ref, note=note, conn=conn,
    )


async def credit(
    *, account_id: str, amount: int, entry_type: str, job_id: Any = None, item_id: Any = None,
    unique_ref: str | None = None, note: str | None = None, conn: Any = None,
) -> LedgerEntry:
    """Add `amount` credits. With `unique_ref`, a second call for the same ref changes nothing."""
    if amount <= 0:
        raise ValidationError("Credit amount must be positive")
    try:
        return await _apply(
            account_id=account_id, amount=amount, entry_type=entry_type, job_id=job_id,
            item_id=item_id, unique_ref=unique_ref, note=note, conn=conn,
        )
    except IntegrityError:
        # A concurrent call with the same unique_ref won the race; its entry stands, ours rolled back.
        if unique_ref is None:
            raise
        existing = await LedgerEntry.get(unique_ref=unique_ref)
        return existing


_ENTRY_BY_REF = Statement('SELECT "id" FROM "ledger_entries" WHERE "unique_ref"=:ref')
_INSERT_ENTRY = Insert(LedgerEntry)


def credit_steps(*, account_id: str, amount: int, entry_type: str, job_id: Any = None, item_id: Any = None,
                 unique_ref: str, note: str | None = None) -> list[Step]:
    """`credit` as the last steps of the caller's `sql.transaction` (the same three statements: the entry
    already made for `unique_ref` makes it a no-op, else the balance's UPDATE ... RETURNING, then the entry
    with the balance after)."""
    if amount <= 0:
        raise ValidationError("Credit amount must be positive")
    now = datetime.now(UTC)
    return [
        Step(_ENTRY_BY_REF, {"ref": unique_ref}, fetch=True),
        Step(_ADD_CREDITS, {"amount": amount, "id": account_id, "floor": 0}, fetch=True,
             when=lambda done: not done[-1]),
        Step(_INSERT_ENTRY.statement, lambda done: _INSERT_ENTRY.row(
            now, account_id=account_id, entry_type=entry_type, amount=amount,
            balance_after=int(done[-1][0]["credits"]), job_id=job_id, item_id=item_id, unique_ref=unique_ref,
            note=note), when=lambda done: bool(done[-1])),
    ]


def debit_steps(*, account_id: str, amount: int, entry_type: str = "job_debit", job_id: Any = None,
                note: str | None = None) -> list[Step]:
    """`debit` (without a unique_ref) as the last steps of the caller's `sql.transaction`: the balance's
    conditional UPDATE ... RETURNING, then the entry with the balance after. When the balance cannot cover
    `amount` the transaction is refused with `Refused("insufficient_credits")`: nothing is written, and the
    caller raises `insufficient(account_id, amount)` once it has rolled back."""
    if amount <= 0:
        raise ValidationError("Debit amount must be positive")
    now = datetime.now(UTC)
    return [
        Step(_ADD_CREDITS, {"amount": -amount, "id": account_id, "floor": amount}, fetch=True,
             required="insufficient_credits"),
        Step(_INSERT_ENTRY.statement, lambda done: _INSERT_ENTRY.row(
            now, account_id=account_id, entry_type=entry_type, amount=-amount,
            balance_after=int(done[-1][0]["credits"]), job_id=job_id, note=note)),
    ]


async def insufficient(account_id: str, amount: int) -> InsufficientCredits | NotFound:
    """The error `_apply` raises when a debit of `amount` is refused (read after the refused transaction)."""
    if not await Account.filter(id=account_id).exists():
        return NotFound("Account not found")
    balance = await balance_of(account_id)
    return InsufficientCredits(f"Insufficient credits: {amount} needed, {balance} available",
                               details={"required": amount, "available": balance})


async def recent_entries(*, account_id: str, limit: int = 50) -> list[LedgerEntry]:
    if limit < 1 or limit > 500:
        raise ValidationError("limit must be between 1 and 500", details={"field": "limit"})
    return await LedgerEntry.filter(account_id=account_id).order_by("-id").limit(limit)


async def entries_of(ctx: Context, *, limit: int = 50) -> list[LedgerEntry]:
    """The caller's account's most recent ledger entries, newest first."""
    principal = ctx.require_principal()
    return await recent_entries(account_id=principal.account_id, limit=limit)


async def entries_page(ctx: Context, *, first: int, after: str | None) -> Page[LedgerEntry]:
    """The caller's account's entries, newest first, by cursor."""
    principal = ctx.require_principal()
    return await keyset_page(LedgerEntry.filter(account_id=principal.account_id), first=first, after=after,
                             sort="id", descending=True)


async def ledger_sum(account_id: str) -> int:
    row = await LedgerEntry.filter(account_id=account_id).annotate(total=Sum("amount")).values("total")
    return int(row[0]["total"] or 0) if row else 0


async def net_debited(*, account_id: str, since: datetime | None, until: datetime | None, conn: Any = None) -> int:
    """Credits spent on jobs in a window: debits minus refunds."""
    query = LedgerEntry.filter(account_id=account_id, entry_type__in=["job_debit", "job_refund"])
    if since is not None:
        query = query.filter(created_at__gte=since)
    if until is not None:
        query = query.filter(created_at__lte=until)
    row = await query.using_db(conn).annotate(total=Sum("amount")).values("total")
    total = int(row[0]["total"] or 0) if row else 0
    return -total
