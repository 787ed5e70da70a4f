"""Turn a select statement into SPEC's page shape."""

from typing import Any

import sqlalchemy as sa

from app.database import reading


def paginate(statement: sa.Select, query: dict[str, Any]) -> dict[str, Any]:
    """One page of statement's rows as {"items", "page", "per_page", "total"}.

    The page and its total come from one query (COUNT(*) OVER () counts the rows the
    filters let through, before LIMIT): one round trip, one snapshot. Only a page past
    the end, which has no row to carry the total, asks for the count on its own.
    """
    page, per_page = query["page"], query["per_page"]
    counted = statement.add_columns(sa.func.count().over().label("total"))
    with reading() as session:
        rows = session.execute(counted.limit(per_page).offset((page - 1) * per_page)).all()
        if rows:
            total = rows[0].total
        elif page == 1:
            total = 0
        else:
            total = session.scalar(sa.select(sa.func.count()).select_from(statement.subquery()))
    items = [row[0] for row in rows]
    return {"items": items, "page": page, "per_page": per_page, "total": total}
