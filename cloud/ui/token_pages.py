"""The API tokens page: your tokens (an admin: everyone's), made and revoked through `/api/v1/auth/tokens`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlmodel import Session

from cloud.api.deps import SessionDep
from cloud.api.routes.auth import MAX_TOKEN_DAYS, TokenIn
from cloud.db.users import User
from cloud.services import users
from cloud.ui.render import page_user, render, to_login

router = APIRouter(include_in_schema=False)


def _tokens(session: Session, user: User) -> dict[str, Any]:
    """The rows the user may see (an admin: every user's, with the owner) and whether they are an admin."""
    admin = users.has_role(user, "admin")
    return {"tokens": users.api_tokens(session, user_id=None if admin else user.id), "admin": admin}


@router.get("/ui/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, session: SessionDep) -> Response:
    """Create a token (its secret shown once, by the page's script) and the tokens with revoke buttons."""
    user = page_user(request, session)
    if user is None:
        return to_login(request)
    return render(request, "tokens.html", user, max_days=MAX_TOKEN_DAYS,
                  default_days=TokenIn.model_fields["ttl_days"].default, **_tokens(session, user))


@router.get("/ui/tokens/rows", response_class=HTMLResponse)
def token_rows(request: Request, session: SessionDep) -> Response:
    """The tokens table's body only (the page fetches it again after a create or a revoke)."""
    user = page_user(request, session)
    if user is None:
        return PlainTextResponse("your session has ended; log in again", status_code=401)
    return render(request, "_token_rows.html", user, **_tokens(session, user))
