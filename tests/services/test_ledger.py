"""The ledger never goes negative and always sums to the balance, under concurrent debits."""

from __future__ import annotations

import asyncio

import pytest

from imageextract.errors import InsufficientCredits, ValidationError
from imageextract.models import Account, LedgerEntry
from imageextract.services import ledger
from tests.factories import make_account
from tests.support import Backend


async def test_100_concurrent_debits_against_50_credits(db: Backend) -> None:
    acc = await make_account(plan="pro", credits=50)
    account_id = acc["account_id"]

    async def one() -> bool:
        try:
            await ledger.debit(account_id=account_id, amount=1, note="concurrency test")
            return True
        except InsufficientCredits:
            return False

    results = await asyncio.gather(*(one() for _ in range(100)))
    assert results.count(True) == 50
    assert results.count(False) == 50
    account = await Account.get(id=account_id)
    assert account.credits == 0
    assert await ledger.ledger_sum(account_id) == 0
    debits = await LedgerEntry.filter(account_id=account_id, entry_type="job_debit").order_by("id")
    assert len(debits) == 50
    # Each entry's balance_after is distinct and the sequence walks 49..0: no two debits saw the same balance.
    assert sorted(e.balance_after for e in debits) == list(range(0, 50))
    assert all(e.amount == -1 for e in debits)


async def test_failed_debit_writes_nothing(db: Backend) -> None:
    acc = await make_account(plan="pro", credits=3)
    with pytest.raises(InsufficientCredits) as info:
        await ledger.debit(account_id=acc["account_id"], amount=4)
    assert info.value.details == {"required": 4, "available": 3}
    assert await LedgerEntry.filter(account_id=acc["account_id"]).count() == 1  # the grant only
    assert (await Account.get(id=acc["account_id"])).credits == 3


async def test_credit_with_unique_ref_applies_once(db: Backend) -> None:
    acc = await make_account(plan="pro", credits=0)
    aid = acc["account_id"]
    entries = await asyncio.gather(*(
        ledger.credit(account_id=aid, amount=2, entry_type="job_refund", unique_ref=f"refund:test:{aid}")
        for _ in range(10)
    ))
    assert len({e.id for e in entries}) == 1
    assert (await Account.get(id=aid)).credits == 2
    assert await ledger.ledger_sum(aid) == 2


async def test_amounts_must_be_positive(db: Backend) -> None:
    acc = await make_account(plan="pro", credits=5)
    for bad in (0, -3):
        with pytest.raises(ValidationError):
            await ledger.debit(account_id=acc["account_id"], amount=bad)
        with pytest.raises(ValidationError):
            await ledger.credit(account_id=acc["account_id"], amount=bad, entry_type="adjustment")
