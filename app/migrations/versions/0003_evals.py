"""Eval runs and their cells.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
    )
    op.create_table(
        "eval_cells",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(100),
                  sa.ForeignKey("eval_runs.run_id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("task", sa.String(30), nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
        sa.Column("depth", sa.Float, nullable=False),
        sa.Column("sample", sa.Integer, nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("answers", sa.JSON, nullable=False),
        sa.Column("metric", sa.String(10), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("ttft_s", sa.Float, nullable=False),
        sa.Column("total_s", sa.Float, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.UniqueConstraint("run_id", "task", "length", "depth", "sample"),
    )


def downgrade() -> None:
    op.drop_table("eval_cells")
    op.drop_table("eval_runs")
