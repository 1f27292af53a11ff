"""Observations: observation sets (synthetic networks, checks, quality control) and the one
observation operator H (grid → points, with torch and NumPy views) used by assimilation and
verification alike.
"""
