"""Emails stored normalised and unique as stored, instead of unique through lower().

Python's lower() and PostgreSQL's differ beyond ASCII, so the app now normalises emails
once, in Python (trimmed, NFC, lower case), and compares them exactly; a plain unique
constraint then serves both uniqueness and the sign-in lookup. Existing addresses are
rewritten to that form first (the function is copied here: a migration must not change
when the app's code does). Two stored addresses with one normal form stop the upgrade
with a unique violation naming it; merge or rename one, then upgrade again.

Revision ID: 5c2e7d41a9b3
Revises: 947a842066c5
Create Date: 2025-11-27
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "5c2e7d41a9b3"
down_revision = "947a842066c5"
branch_labels = None
depends_on = None

BATCH = 1000
users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String))


def normalize_email(email: str) -> str:
    """app.models.user.normalize_email as of this revision."""
    return unicodedata.normalize("NFC", email.strip()).lower()


def normalise_stored_emails() -> None:
    """Rewrite every stored email to its normal form, a batch of rows at a time."""
    connection = op.get_bind()
    last_id = 0
    while rows := connection.execute(
        sa.select(users.c.id, users.c.email)
        .where(users.c.id > last_id)
        .order_by(users.c.id)
        .limit(BATCH)
    ).all():
        for user_id, email in rows:
            if normalize_email(email) != email:
                connection.execute(
                    users.update()
                    .where(users.c.id == user_id)
                    .values(email=normalize_email(email))
                )
        last_id = rows[-1].id


def upgrade():
    normalise_stored_emails()
    # Outside the batch: SQLite's batch copies the table as reflected, and reflection does
    # not see an index on an expression, so the batch could not drop it.
    op.drop_index("uq_users_lower_email", table_name="users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_users_email", ["email"])


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_email", type_="unique")
    op.create_index("uq_users_lower_email", "users", [sa.text("lower(email)")], unique=True)
