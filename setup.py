"""Shim for tools that still run setup.py: the package metadata lives in pyproject.toml.

setup.py stays at the top level of the layout (README, DESIGN); ``pip install .`` and
``pip install -e .`` (make setup) read pyproject.toml.
"""

from setuptools import setup

setup()
