"""The four follow-up services; each package has the same module layout (architecture.md)."""
