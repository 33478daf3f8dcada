"""ORM queries compiled to SQL once per process and run with each call's own values (issue 19).

On the reading loop's hot paths, building a queryset and compiling it to SQL cost about half of the Python CPU
of a request: more than sending the query and reading its rows. A query whose shape never changes (only its
values do) can be compiled once: ``CompiledQuery`` builds the queryset with stand-in values, compiles it, notes
where each stand-in sits among the SQL parameters, and then runs the same SQL with each call's values, turning
the rows into model instances (``select_related`` included) or tuples exactly as the ORM does, through the
compiler that compiled it (its converters: JSON, dates, decimals...).

Nothing is cached but the SQL text: every call reads the database. The ORM query stays the definition (tests
compare the answers of both), so the database vendor's SQL, joins and column lists are Django's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import ModelIterable, get_related_populators

from config.prepared import prepared_cursor

# Stand-in values: no real id, role or key looks like these, so where one appears among the compiled parameters
# is where that value goes (checked: each stand-in must appear, and only where a value of its type was given).
# Within a 32-bit integer column's range: Django 5 compiles a comparison with a value outside it to "no rows".
_INT_BASE = -2_073_064_130


def _stand_in(kind: type, index: int) -> Any:
    if kind is int:
        return _INT_BASE - index
    if kind is str:
        return f"\x00stand-in-{index}\x00"
    raise TypeError(f"a compiled query takes int and str values, not {kind.__name__}")


def _same(value: Any, stand_in: Any) -> bool:
    if isinstance(stand_in, int):
        return isinstance(value, int) and not isinstance(value, bool) and int(value) == stand_in
    return type(value) is str and value == stand_in


class _Compiled:
    def __init__(self, queryset: QuerySet[Any], stand_ins: dict[str, Any], optional: tuple[str, ...]) -> None:
        self.db = queryset.db
        self.compiler = queryset.query.get_compiler(using=self.db)
        self.sql, params = self.compiler.as_sql()
        # Per parameter: the value's name, and the type the compiler wrapped it in (on PostgreSQL a number compared
        # with an expression is sent as psycopg's Int4, an int subclass), or None and the constant.
        self.slots: list[tuple[str | None, Any]] = []
        seen: set[str] = set()
        for value in params:
            name = next((n for n, s in stand_ins.items() if _same(value, s)), None)
            self.slots.append((name, type(value) if name is not None else value))
            if name is not None:
                seen.add(name)
        if missing := set(stand_ins) - seen - set(optional):
            raise RuntimeError(f"the compiled query does not take {sorted(missing)} as parameters")
        # The compiler's converters (JSON, dates, decimals...), worked out once too: per call they were a tenth of
        # a save's CPU. Applied with the calling thread's connection.
        fields = [column[0] for column in self.compiler.select[0 : self.compiler.col_count]]
        self.converters = list(self.compiler.get_converters(fields).items())
        self.models = queryset._iterable_class is ModelIterable
        self.for_update = queryset.query.select_for_update
        if self.models:
            compiler = self.compiler
            klass_info = compiler.klass_info
            self.model = klass_info["model"]
            fields = klass_info["select_fields"]
            self.start, self.end = fields[0], fields[-1] + 1
            self.init_list = [f[0].target.attname for f in compiler.select[self.start : self.end]]
            # Django 5.2's signature (the type stubs follow a later Django that adds a fetch mode).
            self.populators = get_related_populators(klass_info, compiler.select, self.db)  # type: ignore[call-arg]
            self.annotations = dict(compiler.annotation_col_map or {})

    def rows(self, values: dict[str, Any]) -> list[Any]:
        connection = connections[self.db]
        if self.for_update and not connection.in_atomic_block:
            raise RuntimeError("select_for_update outside a transaction: it would lock nothing")
        params = [
            (values[name] if kind is int or kind is str else kind(values[name])) if name is not None else kind
            for name, kind in self.slots
        ]
        with prepared_cursor(connection) as cursor:
            cursor.execute(self.sql, params)
            fetched = cursor.fetchall()
        if not self.converters:
            return fetched
        rows = []
        for row in map(list, fetched):
            for position, (converters, expression) in self.converters:
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
            rows.append(row)
        return rows

    def objects(self, values: dict[str, Any]) -> Iterator[Any]:
        for row in self.rows(values):
            obj = self.model.from_db(self.db, self.init_list, row[self.start : self.end])
            for populator in self.populators:
                populator.populate(row, obj)
            for name, position in self.annotations.items():
                setattr(obj, name, row[position])
            yield obj


class CompiledQuery:
    """``build(**values)`` returns the queryset; ``kinds`` names each value and its type (int or str).

    ``.objects(**values)``: the model instances (a queryset of models); ``.rows(**values)``: the rows as the ORM
    gives them for ``values_list`` (tuples). ``variant``: a key for each shape of the query that ``build`` may
    give (for instance a list of statuses that differs by role), each compiled once, passed to ``build`` first.
    ``optional``: values that some variants do not use."""

    def __init__(self, build: Callable[..., QuerySet[Any]], optional: tuple[str, ...] = (), **kinds: type) -> None:
        self._build = build
        self._optional = optional
        self._kinds = kinds
        self._compiled: dict[Any, _Compiled] = {}
        self._lock = threading.Lock()

    def _get(self, variant: Any) -> _Compiled:
        compiled = self._compiled.get(variant)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(variant)
                if compiled is None:
                    stand_ins = {name: _stand_in(kind, k) for k, (name, kind) in enumerate(self._kinds.items())}
                    args = (variant,) if variant is not None else ()
                    compiled = _Compiled(self._build(*args, **stand_ins), stand_ins, self._optional)
                    self._compiled[variant] = compiled
        return compiled

    def _values(self, values: dict[str, Any]) -> dict[str, Any]:
        for name, kind in self._kinds.items():
            if type(values[name]) is not kind:
                values[name] = kind(values[name])
        return values

    def objects(self, variant: Any = None, **values: Any) -> list[Any]:
        return list(self._get(variant).objects(self._values(values)))

    def first(self, variant: Any = None, **values: Any) -> Any:
        return next(iter(self._get(variant).objects(self._values(values))), None)

    def rows(self, variant: Any = None, **values: Any) -> list[Any]:
        return self._get(variant).rows(self._values(values))
