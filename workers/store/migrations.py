"""Changes to the type of a column in stores created by an earlier version, run with the
schema, under its lock, by the first process that opens the store.

Only one kind so far: a column that held numbers holds text from now on (department ids,
once Feishu's, which are not numbers). PostgreSQL changes the column's type in place. SQLite
cannot, and its numeric columns would keep turning text that looks like a number into one
(`"0123"` and `"123"` would be one department), so the table is rebuilt: set aside, created
anew by the schema, refilled, dropped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TextColumn:
    """`table.column` holds text; `zero_is` is what a 0 it held before becomes (the number 0
    stood for "none" where the text for it is another)."""

    table: str
    column: str
    zero_is: str | None = None


def _aside(table: str) -> str:
    return f"{table}__before_text"


def sqlite_migrate(
    db: sqlite3.Connection, migrations: Sequence[TextColumn], create: Callable[[], None]
) -> None:
    """Inside the schema's transaction: `create` makes the schema (IF NOT EXISTS statements);
    tables with a column still numeric are rebuilt around it."""
    due = [m for m in migrations if _sqlite_type(db, m) not in (None, "TEXT")]
    tables = sorted({m.table for m in due})
    for table in tables:
        db.execute(f'ALTER TABLE "{table}" RENAME TO "{_aside(table)}"')
    create()  # the new tables; their indexes' names are still the old tables'
    for table in tables:
        db.execute(f'INSERT INTO "{table}" SELECT * FROM "{_aside(table)}"')  # noqa: S608 - names from code
        db.execute(f'DROP TABLE "{_aside(table)}"')
    for m in due:
        if m.zero_is is not None:
            update = f'UPDATE "{m.table}" SET "{m.column}" = ? WHERE "{m.column}" = ?'  # noqa: S608
            db.execute(update, [m.zero_is, "0"])
    if tables:
        create()  # the indexes, now that their names are free


def _sqlite_type(db: sqlite3.Connection, m: TextColumn) -> str | None:
    """The column's declared type; None where the table is not there yet."""
    for _, name, declared, *_rest in db.execute(f'PRAGMA table_info("{m.table}")'):
        if name == m.column:
            return str(declared).upper()
    return None


def postgres_statements(migrations: Sequence[TextColumn]) -> list[str]:
    """One guarded statement per column, run after the schema: a no-op once it is text."""
    statements = []
    for m in migrations:
        value = f'"{m.column}"::text'
        if m.zero_is is not None:
            value = f"CASE WHEN \"{m.column}\" = 0 THEN '{m.zero_is}' ELSE {value} END"
        statements.append(
            f"""DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = '{m.table}' AND column_name = '{m.column}'
               AND data_type <> 'text') THEN
        ALTER TABLE "{m.table}" ALTER COLUMN "{m.column}" TYPE TEXT USING {value};
    END IF;
END $$"""  # noqa: S608 - names from code, no value from outside
        )
    return statements
