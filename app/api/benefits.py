"""Benefits: anyone reads them; admins write them."""

from typing import Any

import sqlalchemy as sa
from flask.views import MethodView

from app.api.blueprint import Blueprint
from app.api.catalogue import (
    delete_unreferenced,
    filter_by,
    get_or_404,
    save_changes,
    save_new,
    search,
    show_or_404,
)
from app.api.pagination import paginate
from app.database import reading
from app.errors import ApiError
from app.models import Benefit, Service
from app.models.benefit import WINDOW_REVERSED, code_is, window_reversed
from app.schemas.benefit import (
    BenefitPage,
    BenefitPatchSchema,
    BenefitQuery,
    BenefitSchema,
)

blp = Blueprint("benefits", __name__, url_prefix="/api/benefits", description="Member benefits")


@blp.route("")
class Benefits(MethodView):
    """The benefit list."""

    @blp.arguments(BenefitQuery, location="query")
    @blp.response(200, BenefitPage)
    def get(self, query):
        """List benefits, filtered by title or code (?q=), ?active= and ?service_id=."""
        statement = sa.select(Benefit).order_by(Benefit.id)
        statement = search(statement, query, Benefit.title, Benefit.code)
        columns = {"active": Benefit.active, "service_id": Benefit.service_id}
        return paginate(filter_by(statement, query, columns), query, stale_ok=True)

    @blp.admin_only
    @blp.arguments(BenefitSchema)
    @blp.response(201, BenefitSchema)
    @blp.alt_response(409, "CONFLICT")
    def post(self, fields):
        """Create a benefit (admin); its code must be new, whatever its case."""
        check_benefit(Benefit(), fields)
        return save_new(Benefit(**fields))


@blp.route("/<id:benefit_id>")
class BenefitById(MethodView):
    """One benefit."""

    @blp.response(200, BenefitSchema)
    def get(self, benefit_id):
        """Get a benefit."""
        return show_or_404(Benefit, benefit_id, "benefit")

    @blp.admin_only
    @blp.arguments(BenefitSchema)
    @blp.response(200, BenefitSchema)
    @blp.alt_response(409, "CONFLICT")
    def put(self, fields, benefit_id):
        """Replace a benefit (admin)."""
        return change_benefit(get_or_404(Benefit, benefit_id, "benefit"), fields)

    @blp.admin_only
    @blp.arguments(BenefitPatchSchema)
    @blp.response(200, BenefitSchema)
    @blp.alt_response(409, "CONFLICT")
    def patch(self, fields, benefit_id):
        """Change some of a benefit's fields (admin)."""
        return change_benefit(get_or_404(Benefit, benefit_id, "benefit"), fields)

    @blp.admin_only
    @blp.response(204)
    @blp.alt_response(409, "CONFLICT")
    def delete(self, benefit_id):
        """Delete a benefit no order used (admin); otherwise 409."""
        delete_unreferenced(get_or_404(Benefit, benefit_id, "benefit"), "benefit")


def change_benefit(benefit: Benefit, fields: dict[str, Any]) -> Benefit:
    """Check the benefit as it would be after the change, then save it."""
    check_benefit(benefit, fields)
    return save_changes(benefit, fields)


def check_benefit(benefit: Benefit, fields: dict[str, Any]) -> None:
    """Refuse an unknown service (422), a reversed window (422) or a taken code (409)."""
    merged = {name: getattr(benefit, name) for name in ("service_id", "valid_from", "valid_until")}
    merged |= fields
    if merged["service_id"] is not None and not service_exists(merged["service_id"]):
        raise ApiError.validation({"service_id": ["No such service."]})
    if window_reversed(merged["valid_from"], merged["valid_until"]):
        raise ApiError.validation({"valid_until": [WINDOW_REVERSED]})
    if "code" in fields and code_taken(fields["code"], benefit.id):
        raise ApiError(409, "conflict", "a benefit has this code", {"code": ["Already in use."]})


def service_exists(service_id: int) -> bool:
    """Whether a service has this id."""
    with reading() as session:
        return session.get(Service, service_id) is not None


def code_taken(code: str, own_id: int | None) -> bool:
    """Whether another benefit has this code, whatever its case."""
    statement = sa.select(Benefit.id).where(code_is(code))
    with reading() as session:
        return any(row_id != own_id for row_id in session.scalars(statement))
