"""benchapp: the benchmark's reference app."""
