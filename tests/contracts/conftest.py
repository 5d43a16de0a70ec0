"""Fixtures for the adapter contract tests."""

from tests.support.s3_server import s3_endpoint  # noqa: F401 - a pytest fixture
