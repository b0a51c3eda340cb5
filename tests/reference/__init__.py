"""Frozen copies of earlier implementations, kept only as references for equivalence tests."""
