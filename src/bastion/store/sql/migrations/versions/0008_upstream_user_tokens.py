"""Per-user OAuth upstreams: each user's sealed tokens, and the connect flows in progress.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_user_tokens",
        sa.Column("upstream_id", sa.Integer, sa.ForeignKey("upstreams.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tokens_sealed", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "upstream_oauth_states",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("upstream", sa.String(63), nullable=False),
        sa.Column("verifier_sealed", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=True),
        sa.Column("browser_hash", sa.String(64), nullable=True),
    )
    op.create_index("ix_upstream_oauth_states_expires_at", "upstream_oauth_states", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_upstream_oauth_states_expires_at", "upstream_oauth_states")
    op.drop_table("upstream_oauth_states")
    op.drop_table("upstream_user_tokens")
