"""Users, roles and tokens: create, authenticate, issue/resolve/revoke session and API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlmodel import Session, col, select

from cloud.db.users import LANGUAGES, ROLES, AuthToken, User, UserCreate, UserUpdate
from cloud.security import dummy_verify, hash_password, new_token, token_digest, verify_password
from cloud.services import audit
from cloud.services.clock import now_ms
from cloud.services.errors import DomainError

SESSION_TTL_MS: Final = 12 * 3600 * 1000
ROLE_RANK: Final = {role: i for i, role in enumerate(ROLES)}
_PUBLIC: Final = ("username", "role", "disabled")


class UserError(DomainError):
    """A user change that cannot be made (duplicate name, unknown role)."""


def has_role(user: User, minimum: str) -> bool:
    """Roles are ordered viewer < staff < ops < admin; each includes the ones below."""
    return ROLE_RANK[user.role] >= ROLE_RANK[minimum]


def create_user(session: Session, *, data: UserCreate, actor: str) -> User:
    """A new user (audited); UserError when the name is taken or the role unknown."""
    if data.role not in ROLES:
        raise UserError(f"role {data.role!r} is not one of {', '.join(ROLES)}")
    if session.exec(select(User).where(User.username == data.username)).first() is not None:
        raise UserError(f"user {data.username!r} exists", kind="conflict")
    user = User(username=data.username, role=data.role, password_hash=hash_password(data.password),
                created_at=now_ms())
    session.add(user)
    session.flush()
    audit.record(session, actor=actor, action="user.create", target_type="user", target_id=user.username,
                 after=audit.snapshot(user, _PUBLIC))
    return user


def update_user(session: Session, *, user: User, data: UserUpdate, actor: str) -> User:
    """Change role / disabled / password (audited; the password itself never appears in the log)."""
    before = audit.snapshot(user, _PUBLIC)
    if data.role is not None:
        if data.role not in ROLES:
            raise UserError(f"role {data.role!r} is not one of {', '.join(ROLES)}")
        user.role = data.role
    if data.disabled is not None:
        user.disabled = data.disabled
    if data.password is not None:
        user.password_hash = hash_password(data.password)
    if data.disabled or data.password is not None:
        revoke_all_tokens(session, user_id=user.id)
    session.add(user)
    after = audit.snapshot(user, _PUBLIC) | ({"password": "changed"} if data.password is not None else {})
    audit.record(session, actor=actor, action="user.update", target_type="user", target_id=user.username,
                 before=before, after=after)
    return user


def set_language(session: Session, *, user: User, language: str | None, actor: str) -> User:
    """The user's language for the dashboard, e-mails and PDFs (None: the browser's), audited; UserError when it is
    not one of LANGUAGES."""
    if language is not None and language not in LANGUAGES:
        raise UserError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    before = {"language": user.language}
    user.language = language
    session.add(user)
    audit.record(session, actor=actor, action="user.language", target_type="user", target_id=user.username,
                 before=before, after={"language": language})
    return user


def list_users(session: Session) -> Sequence[User]:
    """Every user, by name."""
    return session.exec(select(User).order_by(User.username)).all()


def get_user(session: Session, *, username: str) -> User | None:
    """The user with this name, or None."""
    return session.exec(select(User).where(User.username == username)).first()


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The enabled user whose password matches, else None (same cost for unknown names)."""
    user = get_user(session, username=username)
    if user is None:
        dummy_verify(password)
        return None
    if not verify_password(password, user.password_hash) or user.disabled:
        return None
    return user


def issue_token(session: Session, *, user: User, kind: str, name: str | None = None,
                ttl_ms: int | None = SESSION_TTL_MS) -> str:
    """A new token for `user`; the caller sees it once, only its digest is stored."""
    token = new_token()
    now = now_ms()
    assert user.id is not None
    session.add(AuthToken(token_hash=token_digest(token), user_id=user.id, kind=kind, name=name, created_at=now,
                          expires_at=None if ttl_ms is None else now + ttl_ms))
    return token


def user_for_token(session: Session, *, token: str) -> User | None:
    """The enabled user owning an unexpired, unrevoked token, else None."""
    row = session.exec(select(AuthToken).where(AuthToken.token_hash == token_digest(token))).first()
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= now_ms()):
        return None
    user = session.get(User, row.user_id)
    return None if user is None or user.disabled else user


def revoke_token(session: Session, *, token: str) -> None:
    """Revoke one token (logout)."""
    row = session.exec(select(AuthToken).where(AuthToken.token_hash == token_digest(token))).first()
    if row is not None:
        row.revoked = True
        session.add(row)


def api_tokens(session: Session, *, user_id: int | None = None) -> list[tuple[AuthToken, str]]:
    """API tokens (not sessions), newest first, with their owner's name: one user's, or everyone's."""
    query = select(AuthToken, User.username).join(User, col(User.id) == AuthToken.user_id).where(
        AuthToken.kind == "api")
    if user_id is not None:
        query = query.where(AuthToken.user_id == user_id)
    return [(row, name) for row, name in session.exec(query.order_by(col(AuthToken.id).desc())).all()]


def revoke_token_id(session: Session, *, token_id: int, user_id: int | None = None) -> AuthToken | None:
    """Revoke API token `token_id` (only among `user_id`'s when given); None when there is no such token."""
    row = session.get(AuthToken, token_id)
    if row is None or row.kind != "api" or (user_id is not None and row.user_id != user_id):
        return None
    row.revoked = True
    session.add(row)
    return row


def revoke_all_tokens(session: Session, *, user_id: int | None) -> None:
    """Revoke every token of a user (disabled, or password changed)."""
    for row in session.exec(select(AuthToken).where(AuthToken.user_id == user_id)).all():
        row.revoked = True
        session.add(row)
