"""Everything else is in pyproject.toml; this adds the top-level conf/ to the wheel as lmbench/conf
(``package-dir`` there maps it), which pyproject's package discovery cannot name by itself."""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["lmbench*", "hydra_plugins*"]), "lmbench.conf"])
