"""What every dashboard page shares: the templates, the logged-in user, rendering, the error page and the redirect
to the login page.

Every page is in the reader's language (cloud/i18n.py): `page_user()` and `render()` make it the active one (the
user's choice, else the browser's Accept-Language, else English), and templates translate with `_()` /
`ngettext()` (Jinja2's i18n extension, new-style: `_("Showing %(n)s", n=3)`, variables escaped)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from cloud import i18n
from cloud.api.deps import request_token
from cloud.db.users import User
from cloud.services import users
from cloud.ui import wording

HERE: Final = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(utc=wording.utc, iso=wording.iso, kind_title=wording.kind_title,
                             battery_pct=wording.battery_pct, REASON_CODES=wording.REASON_CODES,
                             ACTION_WORDS=wording.ACTION_WORDS, BATTERY_LOW_MV=wording.BATTERY_LOW_MV,
                             decimal=wording.decimal, status_word=wording.status_word,
                             severity_word=wording.severity_word, resolution_word=wording.resolution_word,
                             ui_text=wording.ui_text, html_lang=i18n.html_lang,
                             language=i18n.current, LANGUAGES=i18n.NAMES)
templates.env.add_extension("jinja2.ext.i18n")
# The callables read the active language (a context variable), so one environment serves every request's language.
templates.env.install_gettext_callables(  # type: ignore[attr-defined]
    gettext=i18n.gettext, ngettext=i18n.ngettext, newstyle=True)


def now_ms() -> int:
    return int(time.time() * 1000)


def use_language(request: Request, user: User | None) -> str:
    """Make the reader's language the active one for this request: `user`'s choice, else the browser's."""
    return i18n.set_language(i18n.choose(user.language if user else None, request.headers.get("accept-language")))


def page_user(request: Request, session: Session) -> User | None:
    """The logged-in user from the session cookie (or bearer token), else None; the request's language is theirs
    (or the browser's) from here on."""
    token = request_token(request)
    user = users.user_for_token(session, token=token) if token else None
    use_language(request, user)
    return user


def to_login(request: Request) -> RedirectResponse:
    """To the login page, which comes back here once logged in."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def render(request: Request, name: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Template `name` with the user, what their role may do, the time and `context`."""
    can_act = user is not None and users.has_role(user, "staff")
    can_ops = user is not None and users.has_role(user, "ops")
    use_language(request, user)
    return templates.TemplateResponse(request, name, {"user": user, "can_act": can_act, "can_ops": can_ops,
                                                      "now": now_ms(), **context}, status_code=status_code)


def error_page(request: Request, user: User | None, status_code: int, title: str, message: str) -> HTMLResponse:
    """A readable error page."""
    return render(request, "error.html", user, status_code=status_code, title=title, message=message)
