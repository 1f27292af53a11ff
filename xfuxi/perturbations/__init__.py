"""Initial-state perturbations: Perlin (multi-octave gradient) noise and balanced
perturbations (winds from the geostrophic relation).
"""
