"""The difference between a service's live state and a shadow rebuilt beside it, table by table.

Rows are compared by their text form (``t::text``, as the checksums hash them) with ``EXCEPT
ALL``, so a row counts as different when any column differs, and duplicates count as often as
they occur. Tables whose checksums match are not compared row by row: they are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumers.runtime.checksum import table_checksums
from consumers.runtime.unit_of_work import DbConnection

#: Rows shown per side of a table that differs.
EXAMPLES = 3


@dataclass(frozen=True)
class TableDiff:
    table: str
    #: ``None`` when the table does not exist on that side (a migration only one side has).
    live_rows: int | None
    shadow_rows: int | None
    only_live: int = 0
    only_shadow: int = 0
    live_examples: tuple[str, ...] = ()
    shadow_examples: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return self.live_rows == self.shadow_rows and self.only_live == self.only_shadow == 0

    def to_json(self) -> dict[str, object]:
        return {
            "table": self.table,
            "identical": self.identical,
            "live_rows": self.live_rows,
            "shadow_rows": self.shadow_rows,
            "only_live": self.only_live,
            "only_shadow": self.only_shadow,
            "live_examples": list(self.live_examples),
            "shadow_examples": list(self.shadow_examples),
        }


async def diff_states(connection: DbConnection, live: str, shadow: str) -> list[TableDiff]:
    """Per state table of either schema, how ``shadow`` differs from ``live``."""
    live_sums = await table_checksums(connection, live)
    shadow_sums = await table_checksums(connection, shadow)
    diffs = []
    for table in sorted(live_sums.keys() | shadow_sums.keys()):
        live_rows = await _count(connection, live, table) if table in live_sums else None
        shadow_rows = await _count(connection, shadow, table) if table in shadow_sums else None
        if live_sums.get(table) == shadow_sums.get(table):
            diffs.append(TableDiff(table, live_rows, shadow_rows))
        elif live_rows is None or shadow_rows is None:
            present = live if live_rows is not None else shadow
            examples = await _rows(connection, f'select t::text from "{present}"."{table}" t')
            diffs.append(
                TableDiff(
                    table,
                    live_rows,
                    shadow_rows,
                    only_live=live_rows or 0,
                    only_shadow=shadow_rows or 0,
                    live_examples=examples if live_rows is not None else (),
                    shadow_examples=examples if shadow_rows is not None else (),
                )
            )
        else:
            only_live = _except(live, shadow, table)
            only_shadow = _except(shadow, live, table)
            diffs.append(
                TableDiff(
                    table,
                    live_rows,
                    shadow_rows,
                    only_live=int(await connection.fetchval(f"select count(*) from ({only_live}) d")),
                    only_shadow=int(await connection.fetchval(f"select count(*) from ({only_shadow}) d")),
                    live_examples=await _rows(connection, only_live),
                    shadow_examples=await _rows(connection, only_shadow),
                )
            )
    return diffs


def _except(left: str, right: str, table: str) -> str:
    return f'select t::text as row from "{left}"."{table}" t except all select t::text from "{right}"."{table}" t'


async def _rows(connection: DbConnection, query: str) -> tuple[str, ...]:
    rows = await connection.fetch(f"select * from ({query}) d order by 1 limit {EXAMPLES}")
    return tuple(str(row[0]) for row in rows)


async def _count(connection: DbConnection, schema: str, table: str) -> int:
    return int(await connection.fetchval(f'select count(*) from "{schema}"."{table}"'))
