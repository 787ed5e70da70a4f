"""Health bodies, documented so clients and schemathesis know their shape."""

import marshmallow as ma


class LiveSchema(ma.Schema):
    """Liveness: the process answers."""

    status = ma.fields.String(required=True)
    timestamp = ma.fields.String(required=True)


class HealthSchema(LiveSchema):
    """Readiness: status "ok" or "error", and what the database and this process's pool say."""

    database = ma.fields.Dict(required=True, keys=ma.fields.String())
