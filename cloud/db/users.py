"""User tables: users with roles, and their tokens (UI sessions and API bearer tokens), stored hashed."""

from __future__ import annotations

from typing import Final

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

ROLES: Final = ("viewer", "staff", "ops", "admin")
LANGUAGES: Final = ("en", "zh_CN")  # the dashboard's, e-mails' and PDFs' languages (cloud/ui/locale)


class UserBase(SQLModel):
    """A user's name and role."""

    username: str = Field(min_length=1, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"})
    role: str = Field(default="viewer", max_length=16)


class UserCreate(UserBase):
    """A new user; the password is hashed (scrypt) and never stored."""

    password: str = Field(min_length=10, max_length=256)


class UserUpdate(SQLModel):
    """Role, disabling, or a new password."""

    role: str | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=10, max_length=256)


class UserPublic(UserBase):
    """A user as the API shows it."""

    id: int
    disabled: bool
    created_at: int
    language: str | None = None  # a LANGUAGES code; None: the browser's Accept-Language decides


class User(UserBase, table=True):
    """A user account."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=300)
    disabled: bool = False
    created_at: int = Field(sa_type=BigInteger)
    language: str | None = Field(default=None, max_length=16)  # a LANGUAGES code; None: the browser's choice


class AuthToken(SQLModel, table=True):
    """A session (cookie) or API (bearer) token; only its SHA-256 is stored."""

    __tablename__ = "auth_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    kind: str = Field(max_length=16)  # session | api
    name: str | None = Field(default=None, max_length=100)
    created_at: int = Field(sa_type=BigInteger)
    expires_at: int | None = Field(default=None, sa_type=BigInteger)
    revoked: bool = False
