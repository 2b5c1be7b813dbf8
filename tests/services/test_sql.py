"""services/sql.Statement: one SQL text, rendered per dialect, with parameters typed the way the ORM writes
them, and the model objects it loads equal to what Tortoise itself reads back (both backends)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

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


async def test_a_transaction_of_steps_commits_all_or_nothing(db: Backend, account: dict[str, Any]) -> None:
    """`transaction`: each step's result in order; a required step that finds nothing rolls back the steps
    before it; `when` skips; `many` inserts rows exactly as the ORM would have written them."""
    from tortoise.exceptions import IntegrityError

    from imageextract.models import Image
    from imageextract.services.sql import Insert, Refused, Step, transaction

    job = await Job.create(account_id=account["account_id"], type="url", status="queued",
                           input={"value": "https://example.com/"}, total_items=1)
    item = await JobItem.create(job_id=job.id, position=0, kind="url", source_label="https://example.com/")
    bump = Statement('UPDATE "jobs" SET "completed_items"="completed_items"+:n WHERE "id"=:id')
    read = Statement('SELECT "completed_items" FROM "jobs" WHERE "id"=:id')
    insert = Insert(Image)
    now = datetime.now(UTC).replace(microsecond=654321)
    rows = [insert.row(now, job_id=job.id, item_id=item.id, position=i, filename=f"{i}.png", source_kind="img",
                       variants=[{"w": 10 * i}] if i else None, has_alpha=bool(i)) for i in range(3)]
    results = await transaction([
        Step(bump, {"n": 2, "id": job.id}),
        Step(read, {"id": job.id}, fetch=True),
        Step(bump, lambda done: {"n": done[-1][0]["completed_items"], "id": job.id}),  # from what came back
        Step(bump, {"n": 100, "id": job.id}, when=lambda done: False),
        Step(insert.statement, many=rows),
    ])
    assert results == [1, [{"completed_items": 2}], 1, None, 3]
    assert (await Job.get(id=job.id)).completed_items == 4
    images = await Image.filter(item_id=item.id).order_by("position")
    assert [(i.id, i.position, i.variants, i.has_alpha, i.is_lazy_loaded, i.created_at) for i in images] == \
        [(r["id"], n, [{"w": 10 * n}] if n else None, bool(n), False, now) for n, r in enumerate(rows)]
    assert all(r["id"].startswith("img_") for r in rows), "the model's default id"

    # A required step that changes nothing: the earlier steps are rolled back, the outcome is raised.
    try:
        await transaction([Step(bump, {"n": 5, "id": job.id}),
                           Step(bump, {"n": 1, "id": uuid.uuid4()}, required="gone")])
    except Refused as refused:
        assert refused.outcome == "gone"
    else:
        raise AssertionError("not refused")
    assert (await Job.get(id=job.id)).completed_items == 4
    # A constraint broken midway: Tortoise's IntegrityError, nothing kept.
    again = insert.row(now, job_id=job.id, item_id=item.id, position=0, filename="dup.png", source_kind="img")
    try:
        await transaction([Step(bump, {"n": 5, "id": job.id}), Step(insert.statement, many=[again])])
    except IntegrityError:
        pass
    else:
        raise AssertionError("the repeated (item, position) was accepted")
    assert (await Job.get(id=job.id)).completed_items == 4
    assert await Image.filter(item_id=item.id).count() == 3


async def test_insert_rows_convert_and_validate_as_the_orm(db: Backend, account: dict[str, Any]) -> None:
    """`Insert.row` passes plain values through without Tortoise's per-field call: every column still equals
    what the field's `to_db_value` gives, and what a field refuses (too long, None where required) is still
    refused with Tortoise's error, before anything reaches the database."""
    from tortoise.exceptions import ValidationError

    from imageextract.models import Image
    from imageextract.services.sql import Insert

    insert = Insert(Image)
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "job_id": uuid.uuid4(), "item_id": str(uuid.uuid4()), "position": 3, "filename": "x" * 255,
        "source_kind": "img", "width": True, "height": "7", "aspect_ratio": 2, "file_size": 10**12,
        "has_alpha": None, "variants": [{"w": 1}], "alt_text": "é" * 5000, "storage_key": None}
    row = insert.row(now, **fields)
    by_name = {name: (column, field) for name, column, field in insert._fields}
    expected = {column: field.to_db_value(now if name == "created_at" else row["id"] if name == "id"
                                          else fields.get(name, field.default if not callable(field.default)
                                                          else None), None)
                for name, (column, field) in by_name.items()}
    assert row == expected
    assert (row["item_id"], row["height"], row["variants"]) == (fields["item_id"], 7, '[{"w":1}]')
    for bad in ({"filename": "x" * 256}, {"filename": None}, {"source_kind": "k" * 21}):
        try:
            insert.row(now, **{**fields, **bad})
        except ValidationError as exc:
            assert next(iter(bad)) in str(exc)
        else:
            raise AssertionError(f"accepted {bad}")


async def test_a_single_trip_waits_for_an_open_transaction(db: Backend, account: dict[str, Any]) -> None:
    """On SQLite a statement outside a transaction is queued to the connection's thread without Tortoise's
    lock; it must still never run inside someone's open transaction (it would see, or commit, their writes)."""
    import asyncio

    from tortoise.transactions import in_transaction

    read = Statement('SELECT "credits" FROM "accounts" WHERE "id"=:id')
    before = (await read.rows(id=account["account_id"]))[0]["credits"]
    entered, release = asyncio.Event(), asyncio.Event()

    async def rolled_back() -> None:
        try:
            async with in_transaction() as conn:
                await Account.filter(id=account["account_id"]).using_db(conn).update(credits=before + 99)
                entered.set()
                await release.wait()
                raise LookupError("roll back")
        except LookupError:
            pass

    writer = asyncio.create_task(rolled_back())
    await entered.wait()
    reader = asyncio.create_task(read.rows(id=account["account_id"]))
    await asyncio.sleep(0.1)
    if db.name == "sqlite":  # one connection: the read waits for the transaction's end
        assert not reader.done()
    release.set()
    await writer
    assert (await reader)[0]["credits"] == before, "the read saw a write that was rolled back"


# Point reads on SQLite (db_sqlite._Reader): made at once on the loop's thread, on a connection of their own.


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # on Postgres every read is a round trip
async def test_a_point_read_is_made_at_once_and_sees_every_commit(db: Backend, account: dict[str, Any]) -> None:
    """A `point` Statement on SQLite reads on the calling thread, not by a trip to the connection's thread:
    it is answered while a transaction holds Tortoise's connection lock (which a trip waits for), and it
    sees what was committed just before, by this process's connection or by another process's."""
    import sqlite3
    import threading

    from tortoise.transactions import in_transaction

    from imageextract.services.projection import connection

    by_id = Statement('SELECT "name" FROM "accounts" WHERE "id"=:id', point=True)
    by_trip = Statement('SELECT "name" FROM "accounts" WHERE "id"=:id')
    assert await by_id.rows(id=account["account_id"]) == await by_trip.rows(id=account["account_id"])
    reader = connection()._reader
    assert reader is not None and reader.thread == threading.get_ident()

    await Account.filter(id=account["account_id"]).update(name="renamed here")
    assert await by_id.rows(id=account["account_id"]) == [{"name": "renamed here"}]
    other = sqlite3.connect(db.data_dir / "imageextract.sqlite3", isolation_level=None)
    try:
        other.execute('UPDATE "accounts" SET "name"=? WHERE "id"=?', ("renamed elsewhere", account["account_id"]))
    finally:
        other.close()
    assert await by_id.rows(id=account["account_id"]) == [{"name": "renamed elsewhere"}]

    opened, release = asyncio.Event(), asyncio.Event()

    async def hold_the_lock() -> None:
        async with in_transaction() as tx:
            await tx.execute_query('UPDATE "accounts" SET "name"=\'uncommitted\' WHERE "id"=?', [account["account_id"]])
            opened.set()
            await release.wait()

    holder = asyncio.create_task(hold_the_lock())
    await opened.wait()
    try:
        # Answered at once, with what is committed (not the open transaction's write) ...
        assert await asyncio.wait_for(by_id.rows(id=account["account_id"]), 5) == [{"name": "renamed elsewhere"}]
        # ... where a trip waits for the transaction to end.
        trip = asyncio.create_task(by_trip.rows(id=account["account_id"]))
        await asyncio.sleep(0.05)
        assert not trip.done()
    finally:
        release.set()
        await holder
    assert await trip == [{"name": "uncommitted"}]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_point_read_that_cannot_be_made_at_once_goes_by_the_trip(db: Backend, account: dict[str, Any]) -> None:
    """From another thread than the reader's, and when SQLite answers busy, the reader declines (None) and
    the Statement takes the trip; the reader never writes."""
    import sqlite3
    import threading

    from tortoise.exceptions import OperationalError

    from imageextract.db_sqlite import _Reader
    from imageextract.services.projection import connection

    by_id = Statement('SELECT "name" FROM "accounts" WHERE "id"=:id', point=True)
    expected = await by_id.rows(id=account["account_id"])
    reader = connection()._reader
    assert reader is not None
    sql, values = 'SELECT "name" FROM "accounts" WHERE "id"=?', [account["account_id"]]
    assert await asyncio.to_thread(reader.rows, sql, values) is None
    assert reader.rows(sql, values) == expected
    with pytest.raises(OperationalError, match="readonly"):
        reader.rows('UPDATE "accounts" SET "name"=\'x\' WHERE "id"=?', values)

    # Busy: a file in rollback-journal mode, an exclusive transaction open on another connection.
    path = str(db.data_dir / f"busy-{threading.get_ident()}.sqlite3")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        writer.execute("INSERT INTO t VALUES (1, 'a')")
        busy = _Reader(path)
        try:
            writer.execute("BEGIN EXCLUSIVE")
            writer.execute("UPDATE t SET v='b'")
            assert busy.rows("SELECT v FROM t WHERE id=?", [1]) is None  # at once: busy_timeout is 0
            writer.execute("COMMIT")
            assert busy.rows("SELECT v FROM t WHERE id=?", [1]) == [{"v": "b"}]
        finally:
            busy.close()
    finally:
        writer.close()
