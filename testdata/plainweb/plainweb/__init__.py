"""plainweb: a tiny HTTP service that needs only Python's standard library."""
