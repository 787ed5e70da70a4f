"""Every model, importable from one place (flask shell, Alembic)."""

from app.models.service import Service

__all__ = ["Service"]
