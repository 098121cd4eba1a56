"""Shared, tested code for the "DeepSeek, hands-on" notebooks: one module per idea."""

__version__ = "0.1.0"
