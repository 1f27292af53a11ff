"""Models: the FuXi U-Transformer, FuXi-ENS perturbations, Lorenz-96, checkpoints.

Importing this package imports torch.
"""
