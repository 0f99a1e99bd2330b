"""The email channel: notifications delivered by SMTP besides the inbox.

A separate consumer queue (``notifications.email`` ← ``notification.created``, consumed
in batches) sends the emails, so in-app delivery never waits for SMTP. What is sent has
already passed the in-app decision (opt-outs, quiet hours, the daily cap); the channel
adds only its own rule: the user's ``channels`` include ``email``.

* :mod:`.render` — Jinja2 text and HTML per type (HTML autoescaped), overridable by a
  campaign, with the reason footer and the one-click unsubscribe link;
* :mod:`.sender` — aiosmtplib over plain SMTP, STARTTLS or TLS, with credentials;
  tells permanent refusals (5xx) from temporary failures;
* :mod:`.state` — per-notification email state (queued, retrying, sent, failed);
* :mod:`.channel` — the consumer tying them together.
"""
