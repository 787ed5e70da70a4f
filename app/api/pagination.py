"""Turn a select statement into SPEC's page shape."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.database import read_stale_ok, reading


def paginate(
    statement: sa.Select, query: dict[str, Any], stale_ok: bool = False, own_writes: bool = False
) -> dict[str, Any]:
    """One page of statement's rows as {"items", "page", "per_page", "total"}.

    The page and its total come from one query (COUNT(*) OVER () counts the rows the
    filters let through, before LIMIT): one round trip, one snapshot. Only a page past
    the end, which has no row to carry the total, asks for the count on its own. stale_ok
    lets the page come from a replica (read_stale_ok; own_writes: the client's own rows).
    """
    page, per_page = query["page"], query["per_page"]

    def read_page(session: Session) -> tuple[list, int]:
        """The page's rows and the total, in one session."""
        counted = statement.add_columns(sa.func.count().over().label("total"))
        rows = session.execute(counted.limit(per_page).offset((page - 1) * per_page)).all()
        if rows:
            return rows, rows[0].total
        if page == 1:
            return rows, 0
        return rows, session.scalar(sa.select(sa.func.count()).select_from(statement.subquery()))

    if stale_ok:
        rows, total = read_stale_ok(read_page, own_writes=own_writes)
    else:
        with reading() as session:
            rows, total = read_page(session)
    items = [row[0] for row in rows]
    return {"items": items, "page": page, "per_page": per_page, "total": total}
