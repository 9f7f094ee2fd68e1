"""`/api/v1/users` (admin): list, create, change role / disable / reset password."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from cloud.api.deps import Admin, SessionDep
from cloud.db.users import UserCreate, UserPublic, UserUpdate
from cloud.services import users

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("", response_model=list[UserPublic], summary="List users")
def list_users(admin: Admin, session: SessionDep) -> list[UserPublic]:
    """Every user (never their password hash)."""
    return [UserPublic.model_validate(u) for u in users.list_users(session)]


@router.post("", response_model=UserPublic, status_code=201, summary="Create a user",
             responses={409: {"description": "name taken"}, 422: {"description": "unknown role"}})
def create_user(body: UserCreate, admin: Admin, session: SessionDep) -> UserPublic:
    """A user with a role: viewer, staff, ops or admin."""
    user = users.create_user(session, data=body, actor=admin.username)
    session.commit()
    return UserPublic.model_validate(user)


@router.patch("/{username}", response_model=UserPublic, summary="Change a user's role, state or password")
def update_user(username: str, body: UserUpdate, admin: Admin, session: SessionDep) -> UserPublic:
    """Disabling a user or changing the password revokes their sessions and tokens."""
    user = users.get_user(session, username=username)
    if user is None:
        raise HTTPException(status_code=404, detail="no such user")
    if user.id == admin.id and (body.disabled or (body.role is not None and body.role != "admin")):
        raise HTTPException(status_code=409, detail="an admin cannot disable or demote themselves")
    users.update_user(session, user=user, data=body, actor=admin.username)
    session.commit()
    return UserPublic.model_validate(user)
