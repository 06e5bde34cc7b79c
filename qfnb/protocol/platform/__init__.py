"""The local platform's files and places: the daemon's runtime file and status, private files, SQLite
files, call traces and their OpenTelemetry export, the local HTTP surface's guard and where a job
runs (targets)."""
