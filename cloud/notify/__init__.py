"""Alert notifications: channels (`Notifier`s) by registry name, and the dispatcher that decides what to send.

Add a channel by writing a module with a class satisfying `Notifier` and a factory entry in `FACTORIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cloud.config import Settings
from cloud.notify.base import Notification, Notifier, NotifyError


def _webhook(settings: Settings) -> Notifier | None:
    if settings.notify_webhook_url is None:
        return None
    from cloud.notify.webhook import WebhookNotifier

    return WebhookNotifier(url=settings.notify_webhook_url, secret=settings.notify_webhook_secret,
                           timeout_s=settings.notify_timeout_s)


def _email(settings: Settings) -> Notifier | None:
    if settings.smtp_host is None or settings.notify_email_to is None or settings.smtp_from is None:
        return None
    from cloud.notify.email import EmailNotifier

    return EmailNotifier(host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
                         recipients=[a.strip() for a in settings.notify_email_to.split(",")],
                         starttls=settings.smtp_starttls, ca_file=settings.smtp_ca_file,
                         username=settings.smtp_username, password=settings.smtp_password,
                         timeout_s=settings.notify_timeout_s, language=settings.notify_email_language)


# name → factory returning the channel when its settings are given, else None.
FACTORIES: Final[dict[str, Callable[[Settings], Notifier | None]]] = {"webhook": _webhook, "email": _email}


def configured(settings: Settings) -> list[Notifier]:
    """The channels `settings` configures, in registry order."""
    return [n for factory in FACTORIES.values() if (n := factory(settings)) is not None]


__all__ = ["FACTORIES", "Notification", "Notifier", "NotifyError", "configured"]
