"""The platform's durable state and what every room shares: the SQLite store, the object store and dataset
files, the values, request bodies checked once, the cloud's seed names, the faces a room sees (site)."""
