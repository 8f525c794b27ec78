"""Local SQLite stores named by URL (``sqlite:////abs/dir/file.db``): a sweep's Optuna study and a
project's MLflow store. One spelling of the URL, and one way back from it to the file."""

from __future__ import annotations

from pathlib import Path

PREFIX = "sqlite:///"


def url(path: str | Path) -> str:
    """The URL of the database at ``path``, made absolute: the same store from any directory."""
    return f"{PREFIX}{Path(path).resolve()}"


def database(store_url: str) -> Path | None:
    """The database file a local store's URL names; None for any other store (a server)."""
    return Path(store_url.removeprefix(PREFIX)) if store_url.startswith(PREFIX) else None


def make_directory(store_url: str) -> None:
    """Create a local database's directory (SQLite creates the file, not its directory)."""
    path = database(store_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
