"""Shared runtime of the order follow-up services, and the ``followup`` command."""
