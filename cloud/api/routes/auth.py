"""`/api/v1/auth`: log in (session cookie + token), log out, who am I, API tokens for scripts."""

from __future__ import annotations

import logging
import math
from typing import Annotated, Final, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as FastApiPath
from pydantic import BaseModel, Field

from cloud.api.deps import SESSION_COOKIE, CurrentUser, SessionDep, SettingsDep, request_token
from cloud.api.ratelimit import LoginLimiter, client_address
from cloud.db.users import UserPublic
from cloud.services import audit, users

log = logging.getLogger(__name__)
MAX_TOKEN_DAYS: Final = 365
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginIn(BaseModel):
    """User name and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    """The session token (also set as an HttpOnly cookie) and the user."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in_s: int
    user: UserPublic


class LanguageIn(BaseModel):
    """The caller's language for the dashboard, e-mails and PDFs; null: the browser's Accept-Language decides."""

    language: Literal["en", "zh_CN"] | None


class TokenIn(BaseModel):
    """A named API token, valid for `ttl_days` (at most a year: a token that never expires outlives its owner's
    job; make a new one before it ends)."""

    name: str = Field(min_length=1, max_length=100)
    ttl_days: int = Field(default=90, ge=1, le=MAX_TOKEN_DAYS)


class TokenInfo(BaseModel):
    """An API token as listed (never the token itself)."""

    id: int
    user: str
    name: str | None
    created_at: int
    expires_at: int | None
    revoked: bool


class TokenOut(BaseModel):
    """The new API token, shown once."""

    token: str
    name: str


def _client(request: Request) -> str:
    """The client's address, through the proxies `api_trusted_proxies` names (cloud/api/ratelimit.py)."""
    return client_address(request.client.host if request.client else None, request.headers.get("x-forwarded-for"),
                          request.app.state.trusted_proxies)


@router.post("/login", response_model=LoginOut, summary="Log in; sets the session cookie",
             responses={401: {"description": "wrong user name or password"}, 429: {"description": "too many tries"}})
def login(body: LoginIn, request: Request, response: Response, session: SessionDep, settings: SettingsDep) -> LoginOut:
    """Check the password (scrypt); after too many failures per name or address answer 429 with Retry-After."""
    limiter: LoginLimiter = request.app.state.login_limiter
    addr = _client(request)
    wait = limiter.blocked(body.username, addr)
    if wait > 0:
        log.warning("login refused reason=rate_limited user=%r addr=%s", body.username[:64], addr)
        raise HTTPException(status_code=429, detail="too many failed logins; try later",
                            headers={"Retry-After": str(math.ceil(wait))})
    user = users.authenticate(session, username=body.username, password=body.password)
    if user is None:
        limiter.failed(body.username, addr)
        log.warning("login failed user=%r addr=%s", body.username[:64], addr)
        raise HTTPException(status_code=401, detail="wrong user name or password")
    limiter.succeeded(body.username, addr)
    token = users.issue_token(session, user=user, kind="session")
    audit.record(session, actor=user.username, action="auth.login", target_type="user", target_id=user.username,
                 after={"addr": addr})
    session.commit()
    ttl_s = users.SESSION_TTL_MS // 1000
    response.set_cookie(SESSION_COOKIE, token, max_age=ttl_s, httponly=True, samesite="strict",
                        secure=settings.cookie_secure, path="/")
    log.info("login ok user=%s addr=%s", user.username, addr)
    return LoginOut(access_token=token, expires_in_s=ttl_s, user=UserPublic.model_validate(user))


@router.post("/logout", status_code=204, summary="Revoke the current session or token")
def logout(request: Request, response: Response, user: CurrentUser, session: SessionDep) -> None:
    """Revoke the token used for this request and clear the cookie."""
    token = request_token(request)
    if token:
        users.revoke_token(session, token=token)
        audit.record(session, actor=user.username, action="auth.logout", target_type="user", target_id=user.username)
        session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=UserPublic, summary="The authenticated user")
def me(user: CurrentUser) -> UserPublic:
    """Who the cookie or bearer token belongs to."""
    return UserPublic.model_validate(user)


@router.patch("/me", response_model=UserPublic, summary="Change your own language")
def update_me(body: LanguageIn, user: CurrentUser, session: SessionDep) -> UserPublic:
    """`{"language": "zh_CN"}`, `"en"` or `null` (the browser's choice); audited."""
    users.set_language(session, user=user, language=body.language, actor=user.username)
    session.commit()
    return UserPublic.model_validate(user)


@router.post("/tokens", response_model=TokenOut, status_code=201, summary="Create an API (bearer) token")
def create_token(body: TokenIn, user: CurrentUser, session: SessionDep) -> TokenOut:
    """A long-lived token with the caller's role, for scripts; shown once, stored as SHA-256."""
    ttl = body.ttl_days * 86_400_000
    token = users.issue_token(session, user=user, kind="api", name=body.name, ttl_ms=ttl)
    audit.record(session, actor=user.username, action="auth.token_create", target_type="user",
                 target_id=user.username, after={"name": body.name, "ttl_days": body.ttl_days})
    session.commit()
    return TokenOut(token=token, name=body.name)


@router.get("/tokens", response_model=list[TokenInfo], summary="List API tokens (yours; an admin's: everyone's)")
def list_tokens(user: CurrentUser, session: SessionDep, everyone: bool = False) -> list[TokenInfo]:
    """API tokens with their owner, creation, expiry and whether revoked; `everyone=true` needs admin."""
    if everyone and not users.has_role(user, "admin"):
        raise HTTPException(status_code=403, detail="requires role admin or above")
    rows = users.api_tokens(session, user_id=None if everyone else user.id)
    return [TokenInfo(id=row.id or 0, user=name, name=row.name, created_at=row.created_at, expires_at=row.expires_at,
                      revoked=row.revoked) for row, name in rows]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token (yours; an admin: any)")
def revoke_token(token_id: Annotated[int, FastApiPath(ge=1, le=2**63 - 1)], user: CurrentUser,
                 session: SessionDep) -> Response:
    """Revoked at once: the next request with it is 401."""
    admin = users.has_role(user, "admin")
    row = users.revoke_token_id(session, token_id=token_id, user_id=None if admin else user.id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no API token {token_id} of yours")
    audit.record(session, actor=user.username, action="auth.token_revoke", target_type="token",
                 target_id=str(token_id), after={"name": row.name})
    session.commit()
    return Response(status_code=204)
