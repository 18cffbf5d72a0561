"""The local stack: embedded broker and database, service processes, demo traffic."""
