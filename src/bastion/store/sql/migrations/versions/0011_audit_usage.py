"""The audit log (hash-chained records, signed heads and checkpoints) and usage buckets.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", sa.String(32), nullable=False, index=True),
        sa.Column("replica", sa.String(40), nullable=False),
        sa.Column("action", sa.String(200), nullable=False, index=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("actor_user", sa.String(36)),
        sa.Column("actor_token", sa.String(64)),
        sa.Column("actor_client", sa.String(200)),
        sa.Column("actor_address", sa.String(64)),
        sa.Column("server", sa.String(63)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("args_hmac", sa.String(64)),
        sa.Column("result_hmac", sa.String(64)),
        sa.Column("detail", sa.Text),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("chain", "seq", name="uq_audit_chain_seq"),
    )
    op.create_table(
        "audit_marks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(40), nullable=False, index=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "usage_buckets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("row_key", sa.String(64), nullable=False, unique=True),
        sa.Column("granularity", sa.String(8), nullable=False),
        sa.Column("start", sa.String(32), nullable=False),
        sa.Column("writer", sa.String(40), nullable=False),
        sa.Column("server", sa.String(63), nullable=False),
        sa.Column("upstream", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("latency", sa.JSON, nullable=False),
        sa.Column("callers", sa.JSON, nullable=False),
        sa.Column("last_used", sa.String(32), nullable=False),
    )
    op.create_index("ix_usage_granularity_start", "usage_buckets", ["granularity", "start"])


def downgrade() -> None:
    op.drop_table("usage_buckets")
    op.drop_table("audit_marks")
    op.drop_table("audit_records")
