"""lmbench: train and score language models on identical splits, vocabulary and protocol."""

from importlib import metadata

try:
    __version__ = metadata.version("lmbench")
except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
