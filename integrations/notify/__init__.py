"""Notifiers: Slack and Microsoft Teams incoming webhooks, email over SMTP."""
