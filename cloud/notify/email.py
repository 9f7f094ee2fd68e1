"""The `email` channel: plain-text mail over SMTP (stdlib smtplib), optional STARTTLS and login, in the recipients'
language (COLDWATCH_NOTIFY_EMAIL_LANGUAGE: the addresses are not users, so the channel has one language)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from cloud.notify.base import Notification, NotifyError

log = logging.getLogger(__name__)


class EmailNotifier:
    """One SMTP session per notification (notifications are rare; a kept connection would go stale)."""

    name = "email"

    def __init__(self, *, host: str, port: int, sender: str, recipients: list[str], starttls: bool,
                 username: str | None, password: str | None, timeout_s: float, ca_file: str | None = None,
                 language: str = "en") -> None:
        self._host, self._port = host, port
        self._sender, self._recipients = sender, recipients
        self._starttls, self._ca_file = starttls, ca_file
        self._username, self._password = username, password
        self._timeout_s = timeout_s
        self._language = language

    def __repr__(self) -> str:
        return f"EmailNotifier(host={self._host!r}, port={self._port}, recipients={len(self._recipients)})"

    def message(self, notification: Notification) -> EmailMessage:
        """The mail for `notification`."""
        msg = EmailMessage()
        msg["Subject"] = notification.subject_in(self._language)
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._recipients)
        msg["Date"] = formatdate(notification.created_at / 1000, usegmt=True)
        msg["Message-ID"] = make_msgid(idstring=f"coldwatch-{notification.id}")
        msg["X-Coldwatch-Notification"] = str(notification.id)
        msg.set_content(notification.as_text(self._language))
        return msg

    def send(self, notification: Notification) -> None:
        """Connect, STARTTLS (certificate and host name verified) and log in when configured, send, quit; any
        failure is a NotifyError."""
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self._ca_file))
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                refused = smtp.send_message(self.message(notification))
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(self.name, f"server answered {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(self.name, f"{type(exc).__name__}: {exc}"[:300]) from None
        if refused:  # some accepted it: a retry would mail them twice, so it counts as sent
            log.warning("notification partly delivered channel=email notification=%d refused=%s", notification.id,
                        ",".join(sorted(refused)))
