"""Turn a select statement into SPEC's page shape."""

from typing import Any

import sqlalchemy as sa

from app.database import reading
from app.extensions import db


def paginate(statement: sa.Select, query: dict[str, Any]) -> dict[str, Any]:
    """One page of statement's rows as {"items", "page", "per_page", "total"}.

    The page and its count are two reads, each its own snapshot as under READ COMMITTED
    in a transaction, so they need none.
    """
    with reading():
        page = db.paginate(
            statement, page=query["page"], per_page=query["per_page"], error_out=False
        )
    return {"items": page.items, "page": page.page, "per_page": page.per_page, "total": page.total}
