"""Build hook for the one C extension (netboot/tftp/_fastpath.c); metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "netboot.tftp._fastpath",
            sources=["netboot/tftp/_fastpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
