"""Every model, importable from one place (flask shell, Alembic)."""

from app.models.benefit import Benefit
from app.models.order import IdempotencyKey, Order
from app.models.service import Service
from app.models.user import ApiToken, User

__all__ = ["ApiToken", "Benefit", "IdempotencyKey", "Order", "Service", "User"]
