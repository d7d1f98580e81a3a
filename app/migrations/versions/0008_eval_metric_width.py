"""An eval cell's metric holds a published suite's rule and a reasoning-model flag
("raw:babilong:qa5:Bill,Fred"), not only "all"/"part": 10 characters become 200.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("eval_cells") as batch:
        batch.alter_column("metric", existing_type=sa.String(10), type_=sa.String(200),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("eval_cells") as batch:
        batch.alter_column("metric", existing_type=sa.String(200), type_=sa.String(10),
                           existing_nullable=False)
