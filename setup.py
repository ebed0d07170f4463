from setuptools import find_packages, setup

setup(
    name="twisted_p2p",
    version="0.1.0",
    description="A spec-exact P2PFILESHARINGPROJ peer on Twisted, run as a twistd plugin",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.11",
    # package_dir keeps twisted/plugins visible to twistd in editable installs.
    package_dir={"": "."},
    packages=find_packages(include=["twisted_p2p", "twisted_p2p.*"]) + ["twisted.plugins"],
    package_data={"twisted_p2p.launcher.web": ["static/*"]},
    install_requires=["twisted>=24.7", "zope.interface"],
    extras_require={
        "test": ["pytest>=8.4.1", "pytest-twisted>=1.14", "hypothesis", "matplotlib", "twisted[tls]"],
        "plot": ["matplotlib"],
        "tls": ["twisted[tls]"],
        "docs": ["sphinx"],
        # The checks CI runs: ruff, and mypy with the plugin that reads zope.interface.
        "lint": ["ruff>=0.17,<0.18", "mypy>=1.15", "mypy-zope>=1.0"],
    },
    entry_points={"console_scripts": ["p2p-swarm = twisted_p2p.launcher.cli:main"]},
)
