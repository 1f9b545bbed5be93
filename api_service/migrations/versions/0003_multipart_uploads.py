"""videos: multipart upload id, declared size; index for the janitor

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("upload_id", sa.String(255), nullable=True))
    op.add_column("videos", sa.Column("declared_size", sa.BigInteger(), nullable=True))
    op.create_index("ix_videos_status_created", "videos", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_videos_status_created", table_name="videos")
    op.drop_column("videos", "declared_size")
    op.drop_column("videos", "upload_id")
