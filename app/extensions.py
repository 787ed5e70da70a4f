"""Extension objects, created uninitialised; create_app binds them to the app."""

import flask_smorest
from flask_cors import CORS
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from app.schemas.common import ErrorSchema

# Named constraints, so Alembic can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Api(flask_smorest.Api):
    """flask-smorest's Api, documenting SPEC's error body rather than its own."""

    ERROR_SCHEMA = ErrorSchema


class Base(DeclarativeBase):
    """Declarative base of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Objects stay loaded after a commit: a response renders what was written without reading
# it back, and reads give their connection back early (database/session.py).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
api = Api()
cors = CORS()
