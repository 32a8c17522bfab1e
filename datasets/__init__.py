"""Synthetic marketing data for marketlab, and the seeded generator that rebuilds it.

Run ``python -m datasets.build`` from the repository root to regenerate every file
byte for byte. Data cards live in ``datasets/cards/``.
"""
