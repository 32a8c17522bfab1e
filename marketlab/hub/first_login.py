"""The instructors' first login: an account made before the hub opens, with a one-time password only root can read.

NativeAuthenticator lets whoever signs up first under an admin's name become that admin. The hub
closes that gap: before JupyterHub starts, each instructor without an account gets one, authorized,
with a random password written to state/first-login.txt (root only, never printed). The instructor
logs in with it and changes it at /hub/change-password; a later sign-up under that name is refused.
"""

from __future__ import annotations

import os
import secrets

import bcrypt

from ..errors import MarketlabError
from .settings import HubSettings

FIRST_LOGIN_FILE = "first-login.txt"


def seed_instructors(settings: HubSettings) -> list[str]:
    """Make the missing instructor accounts; return the names that got a one-time password."""
    from jupyterhub.orm import new_session_factory
    from nativeauthenticator.orm import UserInfo

    # JupyterHub's own way to open (or create, stamped with its schema version) its database;
    # importing UserInfo first puts NativeAuthenticator's table among the ones it creates.
    make_session = new_session_factory(f"sqlite:///{settings.state / 'jupyterhub.sqlite'}")
    made: list[tuple[str, str]] = []
    with make_session() as db:
        for name in settings.instructors:
            if db.query(UserInfo).filter_by(username=name).first() is not None:
                continue
            password = secrets.token_urlsafe(12)
            db.add(UserInfo(username=name, password=bcrypt.hashpw(password.encode(), bcrypt.gensalt()),
                            is_authorized=True))
            made.append((name, password))
        db.commit()
    if made:
        path = settings.state / FIRST_LOGIN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "a") as out:
            for name, password in made:
                out.write(f"{name} {password}\n")
    return [name for name, _ in made]


def one_time_passwords(settings: HubSettings) -> dict[str, str]:
    """The one-time passwords in state/first-login.txt (the latest per name), for root's eyes."""
    path = settings.state / FIRST_LOGIN_FILE
    if not path.exists():
        return {}
    return dict(line.split(" ", 1) for line in path.read_text().split("\n") if " " in line)


class PasswordNotChangedError(MarketlabError, RuntimeError):
    """An instructor still uses the one-time password: nothing starts until it is changed."""


def require_changed_password(settings: HubSettings, name: str, authenticator: object) -> None:
    """Refuse to go on while `name` can still log in with the one-time password the hub made for them.

    The password sits in a root-only file until the instructor changes it; a server, the course and
    the formgrader stay closed until then, so the hub is never run on a password someone else read.
    """
    once = one_time_passwords(settings).get(name)
    if not once:
        return
    info = authenticator.get_user(name) if hasattr(authenticator, "get_user") else None
    if info is not None and info.is_valid_password(once):
        raise PasswordNotChangedError(
            f"{name}, change your one-time password first: nothing starts while the password the hub "
            "made for you still works.",
            "Open /hub/change-password, choose your own password, then start your server again.")
