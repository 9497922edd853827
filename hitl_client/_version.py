"""The package version, in a module of its own so that any module can import it (the package's
`__init__` imports the client, so the client cannot import it from there)."""

__version__ = "0.1.0"
