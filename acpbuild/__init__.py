"""acpbuild: a build tool for AI-generated media."""

__version__ = "0.1.0"
