"""After-sales service: refund and return progress, with the shop's promises as timers."""
