"""Languages: the message catalogues (gettext, read with Babel), the language a request, a user, an e-mail or a PDF
is in, and `_()` / `ngettext()` that translate into it.

The catalogues are `cloud/ui/locale/<lang>/LC_MESSAGES/messages.po`, read once per process with Babel's .po reader
and turned into gettext `Translations` in memory (no compiled .mo file to build or to go stale; docs/decisions.md).
English is the source language: its "translation" is the message id itself.

Which language applies is a context variable: `activate(lang)` sets it for the current request, e-mail or PDF (a
request's thread or task has its own context, so concurrent requests never see each other's language), and
`_()`, `ngettext()` and `N_()`-marked constants translated with `_()` at use follow it. The dashboard's templates
call the same `_()` (cloud/ui/render.py installs Jinja2's i18n extension with these callables). Logs and API error
codes are never translated.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from gettext import NullTranslations
from pathlib import Path
from typing import Final

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from cloud.db.users import LANGUAGES

DEFAULT: Final = "en"
LOCALE_DIR: Final = Path(__file__).resolve().parent / "ui" / "locale"
DOMAIN: Final = "messages"
# Accept-Language tags (lower case, '_' as '-') → our language codes; a bare primary tag (`zh`) matches too.
_TAGS: Final = {"en": "en", "zh": "zh_CN", "zh-cn": "zh_CN", "zh-hans": "zh_CN", "zh-hans-cn": "zh_CN",
                "zh-sg": "zh_CN", "zh-hans-sg": "zh_CN"}
NAMES: Final = {"en": "English", "zh_CN": "简体中文"}  # each language in itself (the selector shows these)

_current: ContextVar[str] = ContextVar("coldwatch_language", default=DEFAULT)
_loaded: dict[str, NullTranslations] = {}
_lock = threading.Lock()


def catalogue_path(lang: str) -> Path:
    """Where language `lang`'s .po file is."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _load(lang: str) -> NullTranslations:
    if lang == DEFAULT:
        return NullTranslations()
    with catalogue_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)  # a fuzzy entry is not a translation yet: English is shown
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def translations(lang: str | None = None) -> NullTranslations:
    """The gettext translations of `lang` (default: the active language), loaded once per process."""
    lang = supported(lang) or current()
    found = _loaded.get(lang)
    if found is None:
        with _lock:
            found = _loaded.get(lang)
            if found is None:
                found = _loaded[lang] = _load(lang)
    return found


def supported(lang: str | None) -> str | None:
    """`lang` when it is one of LANGUAGES (also written `zh-CN`), else None."""
    if not lang:
        return None
    code = lang.replace("-", "_")
    return code if code in LANGUAGES else None


def negotiate(accept_language: str | None) -> str:
    """The language for an Accept-Language header: the first of the browser's choices, by weight, that we have
    (zh, zh-CN, zh-Hans, zh-SG → zh_CN; en-* → en; traditional Chinese is not offered); English when none is."""
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag and weight > 0:
            choices.append((-weight, i, tag.strip().lower().replace("_", "-")))
    for _, _, tag in sorted(choices):
        if tag == "*":
            return DEFAULT
        lang = _TAGS.get(tag) or ("en" if tag.split("-")[0] == "en" else None)  # zh-TW, zh-Hant: not ours
        if lang is not None:
            return lang
    return DEFAULT


def choose(user_language: str | None, accept_language: str | None) -> str:
    """The user's own choice when set, else the browser's (Accept-Language), else English."""
    return supported(user_language) or negotiate(accept_language)


def current() -> str:
    """The active language code (`en`, `zh_CN`)."""
    return _current.get()


def locale(lang: str | None = None) -> Locale:
    """The Babel locale of `lang` (default: the active language), for dates and numbers."""
    try:
        return Locale.parse(supported(lang) or current())
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT)


def html_lang(lang: str | None = None) -> str:
    """The BCP 47 tag for `<html lang>`: `en`, `zh-CN`."""
    return (supported(lang) or current()).replace("_", "-")


def set_language(lang: str | None) -> str:
    """Make `lang` (unsupported: English) the active language in this context; returns it."""
    code = supported(lang) or DEFAULT
    _current.set(code)
    return code


@contextmanager
def activate(lang: str | None) -> Iterator[str]:
    """Within the block, `_()` translates into `lang` (unsupported or None: English); the language before comes
    back afterwards."""
    token = _current.set(supported(lang) or DEFAULT)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def format_utc(ms: int, *, seconds: bool = True) -> str:
    """A moment in UTC, said so: '2025-01-31 12:00:05 UTC' in English (as it always was), the locale's own
    medium (short, without `seconds`) date and time elsewhere ('2025年1月31日 12:00:05 UTC')."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if current() == DEFAULT:
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
    return format_datetime(moment, "medium" if seconds else "short", tzinfo=UTC, locale=locale()) + " UTC"


def gettext(message: str) -> str:
    """`message` in the active language (itself when not translated)."""
    return translations().gettext(message)


_ = gettext


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for `n`, in the active language."""
    return translations().ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 (gettext's conventional name for "marked, translated later")
    """Mark a constant for extraction without translating it now: translate it with `_()` where it is shown."""
    return message
