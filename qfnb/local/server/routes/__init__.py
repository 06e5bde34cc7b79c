"""The route tables, in rooms that import none of each other: the model calls on every wire (calls), the platform's
objects (platform) and the daemon's control routes (daemon)."""
