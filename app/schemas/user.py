"""Registration, sign-in and profile bodies."""

import marshmallow as ma

from app.models.user import normalize_email
from app.schemas.common import StrictSchema, Text, WholeMatch

PHONE_PATTERN = r"^\+?[0-9][0-9 ()-]{3,30}$"


class EmailAddress(Text):
    """An email address, checked as sent, then loaded in normalize_email's form.

    The check comes first: lower-casing can make a valid address one the check refuses
    (`İ` becomes `i` and a combining dot).
    """

    def __init__(self, **kwargs):
        super().__init__(
            validate=ma.validate.Length(max=254), metadata={"format": "email"}, **kwargs
        )

    def _deserialize(self, value, attr, data, **kwargs):
        """Check the address, then return its normal form."""
        address = super()._deserialize(value, attr, data, **kwargs).strip()
        ma.validate.Email()(address)
        return normalize_email(address)


def password_field(**kwargs) -> Text:
    """A password: 8 to 128 characters (the upper bound keeps hashing cheap to refuse)."""
    return Text(validate=ma.validate.Length(min=8, max=128), load_only=True, **kwargs)


def name_field(**kwargs) -> Text:
    """A person's display name."""
    return Text(validate=ma.validate.Length(min=1, max=200), **kwargs)


def phone_field(**kwargs) -> Text:
    """A phone number: digits with an optional +, spaces, dashes and brackets; null clears it."""
    return Text(
        allow_none=True,
        validate=WholeMatch(PHONE_PATTERN, error="Not a valid phone number."),
        **kwargs,
    )


class RegisterSchema(StrictSchema):
    """What a new customer sends."""

    email = EmailAddress(required=True)
    password = password_field(required=True)
    name = name_field(required=True)
    phone = phone_field(load_default=None)


class LoginSchema(StrictSchema):
    """Credentials to exchange for a token."""

    email = EmailAddress(required=True)
    password = Text(required=True, load_only=True, validate=ma.validate.Length(max=128))


class TokenSchema(ma.Schema):
    """A new bearer token and when it stops working."""

    token = ma.fields.String(required=True)
    expires_at = ma.fields.DateTime(required=True)


class ProfileSchema(ma.Schema):
    """A user as they see themselves: never the password hash."""

    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    phone = ma.fields.String(required=True, allow_none=True)
    role = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)


class ProfileUpdateSchema(StrictSchema):
    """What a user may change about themselves."""

    name = name_field()
    phone = phone_field()
    current_password = Text(load_only=True, validate=ma.validate.Length(max=128))
    new_password = password_field()

    @ma.validates_schema
    def password_change_is_complete(self, data, **kwargs):
        """A new password needs the current one, and the current one needs a new one."""
        if "new_password" in data and "current_password" not in data:
            raise ma.ValidationError("Required to change the password.", "current_password")
        if "current_password" in data and "new_password" not in data:
            raise ma.ValidationError("Required with current_password.", "new_password")
