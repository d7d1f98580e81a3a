"""Questions and answers (the ask history).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "questions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("corpus_id", sa.Integer, sa.ForeignKey("corpora.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("corpus_name", sa.String(200), nullable=False),
        sa.Column("corpus_version", sa.String(64), nullable=False),
        sa.Column("conversation", sa.String(40), nullable=False, index=True),
        sa.Column("turn", sa.Integer, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("in_context_tokens", sa.Integer, nullable=False),
        sa.Column("corpus_tokens", sa.Integer, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("backend", sa.String(50), nullable=False),
        sa.Column("model", sa.String(500), nullable=False),
        sa.Column("usage", sa.JSON, nullable=False),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("finish_reason", sa.String(20), nullable=False),
    )
    op.create_index("ix_questions_corpus_created", "questions", ["corpus_name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_questions_corpus_created", "questions")
    op.drop_table("questions")
