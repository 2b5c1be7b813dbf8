"""services/sql.Statement: one SQL text, rendered per dialect, with parameters typed the way the ORM writes
them, and the model objects it loads equal to what Tortoise itself reads back (both backends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from imageextract.models import Account, Job, JobItem
from imageextract.services.sql import Statement, attach, columns, load, refresh, returning
from tests.support import Backend


def test_render_binds_each_name_once_on_postgres_and_in_order_on_sqlite() -> None:
    st = Statement('UPDATE "t" SET "a"=:x, "b"=:y WHERE "c"=:x AND "d"<:z')
    assert st.render("sqlite") == ('UPDATE "t" SET "a"=?, "b"=? WHERE "c"=? AND "d"<?', ("x", "y", "x", "z"))
    assert st.render("postgres") == ('UPDATE "t" SET "a"=$1, "b"=$2 WHERE "c"=$1 AND "d"<$3', ("x", "y", "z"))


def test_render_leaves_casts_and_quoted_names_alone() -> None:
    st = Statement("""SELECT "x"::text AS "a:b", :v FROM "t" WHERE "k"='lit'""")
    sql, names = st.render("postgres")
    assert sql == """SELECT "x"::text AS "a:b", $1 FROM "t" WHERE "k"='lit'""" and names == ("v",)


async def test_parameters_and_loaded_models_match_the_orm(db: Backend, account: dict[str, Any]) -> None:
    """Writes through Statement are read back by the ORM unchanged (UUID, datetime, JSON, bool), and what
    Statement loads (a join, related objects attached) equals what the ORM loads."""
    now = datetime.now(UTC).replace(microsecond=123456)
    job = await Job.create(account_id=account["account_id"], project_id=account["project_id"], type="url",
                           status="queued", input={"value": "https://example.com/"}, total_items=1)
    item = await JobItem.create(job_id=job.id, position=0, kind="url", source_label="https://example.com/",
                                status="processing", attempts=1)
    done = Statement('UPDATE "job_items" SET "status"=:status, "finished_at"=:at, "warnings"=:warnings, '
                     '"refunded"=:refunded WHERE "id"=:id AND "attempts"=:attempts')
    assert await done.execute(id=item.id, attempts=1, status="done", at=now, warnings=["document_repaired"],
                              refunded=True) == 1
    assert await done.execute(id=item.id, attempts=7, status="failed", at=now, warnings=None, refunded=False) == 0
    orm = await JobItem.get(id=item.id)
    assert (orm.status, orm.finished_at, orm.warnings, orm.refunded) == ("done", now, ["document_repaired"], True)
    # A datetime written by Statement compares like one the ORM wrote (SQLite stores them as text).
    assert await JobItem.filter(id=item.id, finished_at__lt=now + timedelta(microseconds=1)).exists()
    assert not await JobItem.filter(id=item.id, finished_at__lt=now).exists()

    read = Statement(lambda: f"""SELECT {columns(JobItem, "i")}, {columns(Job, "j", "j__")},
                                        {columns(Account, "a", "a__")}
                                 FROM "job_items" i JOIN "jobs" j ON j."id"=i."job_id"
                                 LEFT JOIN "accounts" a ON a."id"=j."account_id" WHERE i."id"=:id""")
    row = (await read.rows(id=item.id))[0]
    loaded, loaded_job = load(JobItem, row), load(Job, row, "j__")
    assert loaded is not None and loaded_job is not None
    attach(loaded_job, "account", load(Account, row, "a__"))
    attach(loaded, "job", loaded_job)
    via_orm = await JobItem.get(id=item.id).select_related("job", "job__account")
    fields = JobItem._meta.fields_db_projection
    assert {f: getattr(loaded, f) for f in fields} == {f: getattr(via_orm, f) for f in fields}
    assert {f: getattr(loaded.job, f) for f in Job._meta.fields_db_projection} == \
        {f: getattr(via_orm.job, f) for f in Job._meta.fields_db_projection}
    assert loaded.job.account.id == via_orm.job.account.id == account["account_id"]
    assert await read.rows(id=uuid.uuid4()) == []

    # UPDATE ... RETURNING refreshes a loaded object in place and keeps what was attached to it.
    bump = Statement(lambda: f'UPDATE "jobs" SET "completed_items"="completed_items"+1 WHERE "id"=:id '
                             f'RETURNING {returning(Job)}')
    refresh(loaded_job, (await bump.rows(id=job.id))[0])
    assert loaded_job.completed_items == 1 and loaded_job.account.id == account["account_id"]
