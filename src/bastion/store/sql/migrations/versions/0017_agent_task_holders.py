"""Which caller started each A2A task and conversation Bastion relayed (store/sql/agent_tasks.py):
a caller may continue only its own. Hashed ids and callers, each row until its hold time passes.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_task_holders",
        sa.Column("upstream", sa.String(63), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("ident_hash", sa.String(64), primary_key=True),
        sa.Column("holder_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_agent_task_holders_expires_at", "agent_task_holders", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_agent_task_holders_expires_at", "agent_task_holders")
    op.drop_table("agent_task_holders")
