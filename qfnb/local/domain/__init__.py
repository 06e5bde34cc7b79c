"""The platform's domain: SQLite store, console objects, datasets and objects, jobs, evaluations."""
