"""DARTS: Differentiable Architecture Search (Liu, Simonyan, Yang, ICLR 2019), reproduced end to end."""

__version__ = "0.1.0"
