"""Core statements for a hot unit of work, run straight on a `sqlite3` connection where there is one.

SQLAlchemy's `Connection.execute` spends about 0.1 ms of Python on every statement (an execution
context, the cache key, a result wrapper). A radio answer runs four, on the one thread that writes
a SQLite file, so that time is a share of every answer. `db.engine.Units` gives a unit one of two
ways to run its statements:

- `DirectRunner` on a plain `sqlite3` connection (the SQLite units thread): each statement is
  compiled once by SQLAlchemy's own SQLite dialect — the same SQL text, the same bind and result
  processing of every value (datetimes, enums, booleans) — and run on the connection's cursor;
- `CoreRunner` anywhere else (PostgreSQL, aiosqlite): `Connection.execute` as usual.

Both take the same statements (built with named `bindparam`s) and the same parameter dicts, and
give rows as plain tuples in the statement's column order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.expression import ClauseElement, Executable

Processor = Callable[[Any], Any]
_MAX_COMPILED = 256


class Runner(Protocol):
    dialect: str  # the database's dialect name ("sqlite", "postgresql")

    def one(self, stmt: Executable, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The statement's first row (SELECT, or DML with RETURNING), None when there is none."""
        ...

    def many(self, stmt: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once per parameter dict (executemany)."""
        ...


@dataclass(frozen=True, slots=True)
class Compiled:
    """One statement compiled for one dialect: its SQL, where each positional value comes from
    (a parameter name, or a constant bound in the statement itself) with its bind processor, and
    the result processor of each column it returns."""

    sql: str
    slots: tuple[tuple[str | None, Any, Processor | None], ...]
    results: tuple[Processor | None, ...]

    @classmethod
    def of(cls, stmt: Executable, dialect: Dialect) -> Compiled:
        compiled: Any = cast(ClauseElement, stmt).compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError(f"{dialect.name} does not take positional parameters")
        slots: list[tuple[str | None, Any, Processor | None]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                slots.append((bind.key, None, process))
            else:  # a value written into the statement (e.g. `state == RadioState.ACTIVE`)
                value = bind.effective_value
                slots.append((None, process(value) if process is not None else value, None))
        columns = getattr(stmt, "exported_columns", ())
        results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
        return cls(compiled.string, tuple(slots), results)

    def values(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, constant, process in self.slots:
            if name is None:
                out.append(constant)
            else:
                value = params[name]
                out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)

    def row(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        if not any(self.results):
            return raw
        return tuple(p(v) if p is not None else v for p, v in zip(self.results, raw, strict=True))


class DirectRunner:
    """Statements on a `sqlite3` connection, compiled once per statement object."""

    _compiled: ClassVar[dict[tuple[int, str], tuple[Executable, Compiled]]] = {}

    def __init__(self, dbapi: sqlite3.Connection, dialect: Dialect) -> None:
        self._db = dbapi
        self._dialect = dialect
        self.dialect = dialect.name

    def _get(self, stmt: Executable) -> Compiled:
        # Keyed by identity: the hot statements are built once (`functools.cache`) and kept here
        # with their compiled form, so an id is never reused for another statement.
        key = (id(stmt), self._dialect.name)
        hit = self._compiled.get(key)
        if hit is None or hit[0] is not stmt:
            if len(self._compiled) >= _MAX_COMPILED:  # statements built per call: do not keep them all
                self._compiled.clear()
            hit = (stmt, Compiled.of(stmt, self._dialect))
            self._compiled[key] = hit
        return hit[1]

    def one(self, stmt: Executable, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        compiled = self._get(stmt)
        row = self._db.execute(compiled.sql, compiled.values(params)).fetchone()
        return compiled.row(row) if row is not None else None

    def many(self, stmt: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        compiled = self._get(stmt)
        self._db.executemany(compiled.sql, [compiled.values(r) for r in rows])


class CoreRunner:
    """Statements through SQLAlchemy Core on the session's connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect.name

    def one(self, stmt: Executable, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        row = self._conn.execute(stmt, dict(params)).first()
        return tuple(row) if row is not None else None

    def many(self, stmt: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        self._conn.execute(stmt, [dict(r) for r in rows])
