"""Users, teams, memberships and sessions; upstreams and virtual servers gain an owner and visibility;
API tokens may belong to a user.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
_OWNED = ("upstreams", "virtual_servers")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "teams",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "team_members",
        sa.Column("team", sa.String(63), sa.ForeignKey("teams.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
    )
    # Plain ADD COLUMN (no table rebuild): rebuilding `upstreams` on SQLite would cascade-delete
    # its catalog items. For the same reason api_tokens.user_id has no foreign key; deleting a user
    # deletes their tokens explicitly.
    for table in _OWNED:
        op.add_column(table, sa.Column("team", sa.String(63)))
        op.add_column(table, sa.Column("owner", sa.String(36)))
        # Existing rows were made by the admin: private (admins only) until someone shares them.
        op.add_column(table, sa.Column("visibility", sa.String(8), nullable=False, server_default="private"))
    op.add_column("api_tokens", sa.Column("user_id", sa.String(36)))
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_user_id", "api_tokens")
    op.drop_column("api_tokens", "user_id")
    for table in _OWNED:
        for column in ("visibility", "owner", "team"):
            op.drop_column(table, column)
    op.drop_table("user_sessions")
    op.drop_table("team_members")
    op.drop_table("teams")
    op.drop_table("users")
