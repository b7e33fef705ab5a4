"""Intervention Training (InT) pipeline library."""
