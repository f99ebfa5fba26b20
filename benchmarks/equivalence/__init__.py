"""Equivalence with plain pytest, on real third-party suites: see README.md here."""
