"""Owners, sharing, users and the audit log (sign-in for teams). Rows from before belong to
`admin` and stay private (admins only) until shared.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("corpora") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False,
                                   server_default="admin"))
        batch.add_column(sa.Column("visibility", sa.String(10), nullable=False,
                                   server_default="private"))
        batch.add_column(sa.Column("shared_groups", sa.JSON, nullable=True))
    with op.batch_alter_table("questions") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False,
                                   server_default="admin"))
        batch.create_index("ix_questions_owner", ["owner"])
    with op.batch_alter_table("eval_runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False,
                                   server_default="admin"))
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("groups", sa.JSON, nullable=True),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_index("ix_audit_user_at", "audit", ["user", "at"])


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_table("users")
    with op.batch_alter_table("eval_runs") as batch:
        batch.drop_column("owner")
    with op.batch_alter_table("questions") as batch:
        batch.drop_index("ix_questions_owner")
        batch.drop_column("owner")
    with op.batch_alter_table("corpora") as batch:
        batch.drop_column("shared_groups")
        batch.drop_column("visibility")
        batch.drop_column("owner")
