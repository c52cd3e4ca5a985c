# Root conftest: keeps the repository root importable for tests/helpers.
