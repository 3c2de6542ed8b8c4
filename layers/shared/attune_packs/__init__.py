"""Attune pack installer: domain logic and AWS adapters shared by every Lambda function."""

__version__ = "0.1.0"
