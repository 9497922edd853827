"""Fronts for other clients and chat tools (see each subpackage)."""
