"""Logistics service: proactive dispatch, stall, lateness and exception notices."""
