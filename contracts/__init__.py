"""The code form of platform-contract.md plus our internal messages.

Changes are additive; a breaking change to an event is a new ``type``.
"""
