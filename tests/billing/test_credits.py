"""Credit rules the plans table promises: the free plan's daily cap at submission, and the operator commands
(grant-credits, set-plan) that write ledger entries; the ledger sums to the balance after each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx

from imageextract.models import Account, Job, LedgerEntry
from imageextract.services import ledger
from tests.billing.conftest import assert_ledger_consistent
from tests.billing.gqlclient import run_gql
from tests.factories import make_account
from tests.support import Backend, ServerProcess

SUBMIT = "mutation($url: String!) { submitJob(input: {type: \"url\", url: $url}) { jobId } }"


async def test_free_plan_daily_cap_is_a_402_with_the_cap(client: httpx.AsyncClient, server: ServerProcess,
                                                         db: Backend) -> None:
    acc = await make_account(plan="free")
    aid = acc["account_id"]
    await ledger.debit(account_id=aid, amount=10, note="earlier today")
    r = await client.post("/api/v1/jobs", headers=acc["headers"], json={"type": "url", "input": "http://127.0.0.1:9/a"})
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["code"] == "daily_credit_cap"
    assert err["details"] == {"daily_credit_cap": 10, "spent_today": 10, "required": 1}
    _, errors = await run_gql(server.base_url, SUBMIT, variables={"url": "http://127.0.0.1:9/a"},
                              headers=acc["headers"])
    assert errors is not None
    assert errors[0]["extensions"]["code"] == "daily_credit_cap" and errors[0]["message"] == err["message"]
    assert errors[0]["extensions"]["details"] == err["details"]
    assert await Job.filter(account_id=aid).count() == 0
    assert await assert_ledger_consistent(aid) == 40


def _cli(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, IMAGEEXTRACT_DATA_DIR=str(backend.data_dir), IMAGEEXTRACT_CREATE_DEMO_ACCOUNT="false")
    env.pop("IMAGEEXTRACT_DATABASE_URL", None)
    if backend.database_url:
        env["IMAGEEXTRACT_DATABASE_URL"] = backend.database_url
    return subprocess.run([sys.executable, "-m", "imageextract.cli", "admin", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _error(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert out.returncode == 1, out.stdout
    return dict(json.loads(out.stderr)["error"])


async def test_admin_grant_credits_and_set_plan(db: Backend) -> None:
    acc = await make_account(plan="free")
    aid = acc["account_id"]
    out = _cli(db, "grant-credits", "--account", aid, "--credits", "120", "--reason", "support ticket 42", "--json")
    assert out.returncode == 0, out.stderr
    granted = json.loads(out.stdout)
    assert granted["account_id"] == aid and granted["credits_granted"] == 120 and granted["balance"] == 170
    entry = await LedgerEntry.get(id=granted["ledger_entry_id"])
    assert entry.entry_type == "grant" and entry.amount == 120 and entry.note == "operator grant: support ticket 42"

    out = _cli(db, "set-plan", "--account", aid, "--plan", "scale", "--json")
    assert out.returncode == 0, out.stderr
    changed = json.loads(out.stdout)
    assert changed["plan"] == "scale" and changed["previous_plan"] == "free"
    assert changed["credits_granted"] == 20000 and changed["balance"] == 20170
    assert (await LedgerEntry.get(id=changed["ledger_entry_id"])).entry_type == "plan_grant"
    assert (await Account.get(id=aid)).plan == "scale"

    out = _cli(db, "set-plan", "--account", aid, "--plan", "starter", "--credits", "0", "--json")
    assert json.loads(out.stdout)["ledger_entry_id"] is None and (await Account.get(id=aid)).plan == "starter"
    plain = _cli(db, "grant-credits", "--account", aid, "--credits", "1", "--reason", "plain output")
    assert plain.returncode == 0 and "balance: 20171" in plain.stdout

    assert _error(_cli(db, "grant-credits", "--account", "acc_nope", "--credits", "5", "--reason", "x",
                       "--json"))["code"] == "not_found"
    assert _error(_cli(db, "set-plan", "--account", "acc_nope", "--plan", "pro", "--json"))["code"] == "not_found"
    for bad in ("0", "-5"):
        assert _error(_cli(db, "grant-credits", "--account", aid, "--credits", bad, "--reason", "x",
                           "--json"))["details"] == {"field": "credits"}
    assert _error(_cli(db, "grant-credits", "--account", aid, "--credits", "5", "--reason", "  ",
                       "--json"))["details"] == {"field": "reason"}
    assert _error(_cli(db, "set-plan", "--account", aid, "--plan", "pro", "--credits", "-1",
                       "--json"))["code"] == "validation_error"
    wrong_plan = _cli(db, "set-plan", "--account", aid, "--plan", "platinum", "--json")
    assert wrong_plan.returncode == 2 and "invalid choice" in wrong_plan.stderr
    assert (await Account.get(id=aid)).plan == "starter"
    assert await assert_ledger_consistent(aid) == 20171
