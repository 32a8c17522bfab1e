"""marketlab: hands-on AI labs for marketing teams."""

__version__ = "0.1.0"
