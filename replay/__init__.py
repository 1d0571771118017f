"""Reconstruct reclaim from parsed traces and replay it through unmap models."""
