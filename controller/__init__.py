"""Everything with I/O: the os-ken app, the programmer, the store, the REST API, config, CLIs."""

__version__ = "0.1.0"
