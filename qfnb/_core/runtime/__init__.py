"""The event-loop runtime: qfnb's background loop, polling and progress."""
