"""Analyses (briefings, extractions into tables, comparisons) and the model calls they finished,
so an interrupted one resumes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("analysis_id", sa.String(40), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("owner", sa.String(200), nullable=False, server_default="admin"),
        sa.Column("corpus_name", sa.String(200), nullable=False),
        sa.Column("corpus_version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_analyses_owner", "analyses", ["owner"])
    op.create_index("ix_analyses_corpus_name", "analyses", ["corpus_name"])
    op.create_table(
        "analysis_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("analysis_id", sa.String(40),
                  sa.ForeignKey("analyses.analysis_id", ondelete="CASCADE"), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("usage", sa.JSON, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.UniqueConstraint("analysis_id", "level", "position"),
    )
    op.create_index("ix_analysis_steps_analysis_id", "analysis_steps", ["analysis_id"])


def downgrade() -> None:
    op.drop_table("analysis_steps")
    op.drop_table("analyses")
