"""Notifier service: the one place where messages are rendered and delivered."""
