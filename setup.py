"""Build hook for the one C extension (netboot/tftp/_fastpath.c); metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "netboot.tftp._fastpath",
            sources=["netboot/tftp/_fastpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            # Without a compiler netboot still installs and serves TFTP from its Python
            # loop (the server logs that once); tests/unit/test_tftp_fastpath.py fails.
            optional=True,
        )
    ]
)
