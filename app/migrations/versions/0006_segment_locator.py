"""A segment's locator: where a part of an Office file, web page, mail or e-book is, as a
reader cites it ("§4 Renewal ¶2", "slide 5 (notes)", "Opex!A1:C5"). Nullable: rows from before
(lines, pages, cells, times) have none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segments") as batch:
        batch.add_column(sa.Column("locator", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("segments") as batch:
        batch.drop_column("locator")
