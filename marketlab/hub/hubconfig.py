"""JupyterHub's configuration for a cohort, from the hub's settings (loaded by instructor/hub/jupyterhub_config.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .. import paths
from .settings import GATEWAY_ACCOUNT, INSTRUCTORS_GROUP, SERVICE_NAME, USERNAME_PATTERN, HubSettings
from .spawner import ROOT_VARIABLE

SERVICE_SCOPE = f"access:services!service={SERVICE_NAME}"


def configure(c: Any, settings: HubSettings) -> None:
    """Fill JupyterHub's config object `c` for the hub described by `settings`."""
    c.JupyterHub.ip = settings.ip
    c.JupyterHub.port = settings.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_port
    c.JupyterHub.db_url = f"sqlite:///{settings.state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(settings.state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(settings.state / "jupyterhub.pid")
    c.ConfigurableHTTPProxy.pid_file = str(settings.state / "proxy.pid")
    c.ConfigurableHTTPProxy.command = [str(proxy_command())]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.JupyterHub.cleanup_servers = True

    # Named learners and instructors: NativeAuthenticator (sign-up, then an instructor authorizes).
    c.JupyterHub.authenticator_class = "nativeauthenticator.NativeAuthenticator"
    c.NativeAuthenticator.open_signup = False
    c.NativeAuthenticator.check_common_password = True
    c.NativeAuthenticator.minimum_password_length = 10
    c.NativeAuthenticator.allow_2fa = False
    c.Authenticator.username_pattern = USERNAME_PATTERN
    c.Authenticator.admin_users = set(settings.instructors)
    c.Authenticator.allow_all = True  # every user NativeAuthenticator authorized; it refuses the rest
    c.JupyterHub.load_groups = {INSTRUCTORS_GROUP: {"users": list(settings.instructors)}}

    # Every person may reach the service (the gateway and progress), with their server's own token too.
    c.JupyterHub.load_roles = [
        {"name": "user", "scopes": ["self", SERVICE_SCOPE]},
        {"name": "server", "scopes": ["users:activity!user", "access:servers!server", SERVICE_SCOPE]},
        {"name": "marketlab-service", "services": [SERVICE_NAME], "scopes": ["read:groups", "read:users:name"]},
    ]
    c.JupyterHub.services = [{
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{settings.service_port}",
        "command": [sys.executable, "-I", "-m", "marketlab.hub.service"],
        "user": GATEWAY_ACCOUNT,
        "cwd": str(settings.gateway),
        "environment": {ROOT_VARIABLE: str(settings.root), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                        "LANG": "C.UTF-8", "HOME": str(settings.gateway)},
        "oauth_no_confirm": True,
        "display": False,
    }]

    c.JupyterHub.spawner_class = "marketlab.hub.spawner.MarketlabSpawner"
    c.MarketlabSpawner.hub_root = str(settings.root)
    c.MarketlabSpawner.sandbox_learners = settings.sandbox_learners
    c.Spawner.default_url = "/lab"
    c.Spawner.env_keep = []  # an allowlist: the spawner sets what a server needs (spawner.server_environment)
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 120
    c.Spawner.mem_limit = None
    # Idle servers stop (JupyterHub's own culler service would need its package; the server culls itself).
    c.Spawner.args = ["--ServerApp.shutdown_no_activity_timeout=7200",
                      "--MappingKernelManager.cull_idle_timeout=3600"]


def proxy_command() -> Path:
    """configurable-http-proxy as installed by the set-up (instructor/hub/node_modules)."""
    return paths.instructor() / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
