"""
Run a Django app's AI features on its users' own devices.
"""

__version__ = "0.1.0"
