"""Demo traffic for the local stack, and a webhook receiver that prints what customers get."""
