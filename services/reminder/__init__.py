"""Reminder service: tiered unpaid-order reminders (催付) and order confirmations."""
