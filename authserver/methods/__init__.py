"""One module per authentication factor, all behind the interface in ``base``."""
