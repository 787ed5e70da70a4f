"""Liveness and readiness for load balancers and operators."""

from app.api.blueprint import Blueprint
from app.database import health_probe
from app.database.health import health_report
from app.database.replicas import add_replicas
from app.extensions import db
from app.models.base import utc_timestamp
from app.schemas.health import HealthSchema, LiveSchema

blp = Blueprint("health", __name__, url_prefix="/api/health", description="Service health")


@blp.route("")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="The database cannot be reached")
def health():
    """Readiness: the database answers, with our connection counts and this process's pool."""
    body, status = health_report(health_probe(), db.engine)
    return add_replicas(body), status


@blp.route("/live")
@blp.response(200, LiveSchema)
def live():
    """Liveness: the process answers. Never touches the database."""
    return {"status": "ok", "timestamp": utc_timestamp()}
