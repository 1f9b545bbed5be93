"""videos.visibility; rate_limits counters shared by every API replica

Revision ID: 0004_limits_visibility
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_limits_visibility"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_VISIBILITIES = ("public", "unlisted", "private")


def upgrade() -> None:
    # Existing videos keep the original service's behaviour: online means public.
    op.add_column(
        "videos",
        sa.Column(
            "visibility",
            sa.Enum(*_VISIBILITIES, name="video_visibility"),
            nullable=False,
            server_default="public",
        ),
    )
    op.create_table(
        "rate_limits",
        sa.Column("bucket", sa.String(128), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        # Unix seconds after which the row is garbage.
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name="pk_rate_limits"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_rate_limits_expires_at", "rate_limits", ["expires_at"])


def downgrade() -> None:
    op.drop_table("rate_limits")
    op.drop_column("videos", "visibility")
