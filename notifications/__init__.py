"""Notifications: a generic outbox. It stores the events handed to it (type, partner, subject id,
payload) and delivers them to the partners' webhook subscriptions, signed. Knows only the kernel."""
