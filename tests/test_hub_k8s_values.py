"""The Kubernetes deployment in instructor/hub/k8s/: chart values, gateway and autograde manifests.

`helm template` cannot run here, so these tests check what it would: the keys of the Zero to
JupyterHub chart that values.yaml relies on, with their types, in a schema of our own
(Z2JH_KEYS below, written from the chart's values.schema.yaml of z2jh 4.4.0; not a copy of it).
At the levels we use, additionalProperties is false, so a misspelt key fails here instead of
being ignored by the chart or refused at install time.

What was looked for, and found, before writing this:
- Debian has no helm package (`apt-cache search helm` lists only Emacs' helm).
- PyPI's `helm-python-sdk` (0.2.2) ships Helm v4 as a shared library and renders charts
  offline, validating values against the chart's values.schema.json. It is a 75 MB wheel,
  so it is not a dependency of this project.
- The chart itself is on no registry this project's machines reach: helm charts come from
  the chart repository's web host, which is not a package registry.
So test_renders_with_the_real_chart runs only where both are present: set
MARKETLAB_Z2JH_CHART to an unpacked jupyterhub chart folder (the chart's source, with
values.schema.yaml) and have `helm_python` importable. values.yaml was rendered that way
against z2jh 4.4.0 when it was written.

The manifests are also checked against the hub's own code: hub.json in gateway.yaml must be
valid marketlab.hub.settings.HubSettings, the gateway pod must give marketlab/hub/service.py
what it reads (hub.json, root/gateway, the JUPYTERHUB_* a hub-managed service gets, the upstream
key from a Secret), singleuser.extraEnv must be spawner.server_environment with the hub's
in-cluster URL, and hub.config/hub.loadRoles must say what hubconfig.configure says.

Each check is a function that returns the problems it finds; the tests assert there are none
in the real files, and the *_bites tests show each check catching a planted mistake.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from jupyterhub.services.auth import HubOAuth
from traitlets.config import Config

from marketlab.hub import hubconfig
from marketlab.hub.settings import SERVICE_NAME, SETTINGS_FILE, USERNAME_PATTERN, HubError, HubSettings, served_model
from marketlab.hub.spawner import ROOT_VARIABLE, server_environment
from marketlab.hub.start import KEY_VARIABLE

K8S = Path(__file__).resolve().parents[1] / "instructor" / "hub" / "k8s"
VALUES = K8S / "values.yaml"
GATEWAY = K8S / "gateway.yaml"
AUTOGRADE = K8S / "autograde-job.yaml"
GATEWAY_SERVICE = SERVICE_NAME  # hub.services.<name>
SETTINGS_CONFIGMAP = "marketlab-hub-settings"
# The hub as learners' servers reach it in the cluster: the chart's proxy-public Service.
HUB_IN_CLUSTER = "http://proxy-public.marketlab.svc.cluster.local"
PROXY_POD = {"app": "jupyterhub", "component": "proxy"}
GATEWAY_PREFIX = f"/services/{GATEWAY_SERVICE}/"


# --- the schema of the chart keys we rely on -------------------------------------------------

def obj(required: tuple[str, ...] = (), **properties: dict) -> dict:
    """An object that allows exactly these keys."""
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def t(*types: str) -> dict:
    return {"type": list(types) if len(types) > 1 else types[0]}


def enum(*values) -> dict:
    return {"enum": list(values)}


BOOL, INT, STR = t("boolean"), t("integer"), t("string")
OPT_BOOL, OPT_INT, OPT_STR = t("boolean", "null"), t("integer", "null"), t("string", "null")
ANY_OBJECT, ARRAY = {"type": "object"}, t("array")
STRINGS = {"type": "array", "items": STR}
ENABLED = obj(enabled=BOOL)
EGRESS_ALLOW_RULES = obj(cloudMetadataServer=BOOL, dnsPortsCloudMetadataServer=BOOL,
                         dnsPortsKubeSystemNamespace=BOOL, dnsPortsPrivateIPs=BOOL,
                         nonPrivateIPs=BOOL, privateIPs=BOOL)
NETWORK_POLICY = obj(enabled=BOOL, ingress=ARRAY, egress=ARRAY, egressAllowRules=EGRESS_ALLOW_RULES)
NODE_AFFINITY = obj(nodeAffinity=obj(matchNodePurpose=enum("ignore", "prefer", "require")))

# A JupyterHub service's fields (jupyterhub.services.service.Service); the hub refuses others.
SERVICE = obj(name=STR, admin=BOOL, url=STR, display=BOOL, oauth_no_confirm=BOOL, info=ANY_OBJECT,
              oauth_client_id=STR, oauth_redirect_uri=STR, oauth_roles=STRINGS,
              oauth_client_allowed_scopes=STRINGS, command=t("string", "array"),
              api_token=OPT_STR, apiToken=OPT_STR)
# A JupyterHub role (load_roles entry).
ROLE = obj(name=STR, description=STR, scopes=STRINGS, users=STRINGS, groups=STRINGS, services=STRINGS)

Z2JH_KEYS = obj(
    fullnameOverride=OPT_STR,
    hub=obj(
        existingSecret=OPT_STR,
        db=obj(type=enum("sqlite-pvc", "sqlite-memory", "mysql", "postgres", "other"),
               url=OPT_STR, upgrade=OPT_BOOL, password=OPT_STR),
        # hub.config passes traitlets config through; we list the classes and traits we set.
        config=obj(
            JupyterHub=obj(authenticator_class=STR,
                           load_groups={"type": "object", "additionalProperties": obj(users=STRINGS)}),
            Authenticator=obj(admin_users=STRINGS, allow_all=BOOL, username_pattern=STR),
            NativeAuthenticator=obj(open_signup=BOOL, minimum_password_length=INT,
                                    check_common_password=BOOL, allow_2fa=BOOL),
        ),
        services={"type": "object", "additionalProperties": SERVICE},
        loadRoles={"type": "object", "additionalProperties": ROLE},
        extraConfig={"type": "object", "additionalProperties": STR},
        resources=ANY_OBJECT,
        concurrentSpawnLimit=OPT_INT,
        consecutiveFailureLimit=OPT_INT,
        activeServerLimit=OPT_INT,
        allowNamedServers=OPT_BOOL,
        shutdownOnLogout=OPT_BOOL,
        networkPolicy=NETWORK_POLICY,
    ),
    proxy=obj(
        service=obj(type=enum("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")),
        chp=obj(resources=ANY_OBJECT, networkPolicy=NETWORK_POLICY),
    ),
    ingress=obj(enabled=BOOL, ingressClassName=OPT_STR, hosts=STRINGS, tls=ARRAY),
    singleuser=obj(
        image=obj(("name", "tag"), name=STR, tag=STR, pullPolicy=enum(None, "", "IfNotPresent", "Always", "Never")),
        cmd=t("array", "string", "null"),
        defaultUrl=OPT_STR,
        startTimeout=OPT_INT,
        fsGid=OPT_INT,
        cpu=obj(guarantee=t("number", "null"), limit=t("number", "null")),
        memory=obj(guarantee=t("number", "string", "null"), limit=t("number", "string", "null")),
        extraEnv={"type": ["object", "array"], "additionalProperties": t("string", "object")},
        storage=obj(
            type=enum("dynamic", "static", "none"),
            capacity=OPT_STR,
            homeMountPath=STR,
            dynamic=obj(storageAccessModes=STRINGS, storageClass=OPT_STR),
            extraVolumes=t("object", "array", "null"),
            extraVolumeMounts=t("object", "array", "null"),
        ),
        networkPolicy=NETWORK_POLICY,
        cloudMetadata=obj(blockWithIptables=BOOL),
    ),
    scheduling=obj(
        userScheduler=obj(enabled=BOOL, replicas=INT),
        podPriority=obj(enabled=BOOL),
        userPlaceholder=obj(enabled=BOOL, replicas=INT),
        userPods=NODE_AFFINITY,
        corePods=NODE_AFFINITY,
    ),
    prePuller=obj(hook=ENABLED, continuous=ENABLED),
    cull=obj(("enabled",), enabled=BOOL, users=OPT_BOOL, adminUsers=OPT_BOOL, removeNamedServers=OPT_BOOL,
             timeout=OPT_INT, every=OPT_INT, concurrency=OPT_INT, maxAge=OPT_INT),
    debug=obj(("enabled",), enabled=BOOL),
)


# --- loading -----------------------------------------------------------------------------------

class StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys without a word; helm refuses the file. So do we."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {twice}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_values(text: str | None = None) -> dict:
    return yaml.load(VALUES.read_text() if text is None else text, Loader=StrictLoader)


def load_manifests(path: Path) -> list[dict]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=StrictLoader) if doc is not None]


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"].get("name") == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# --- checks (each returns the problems it finds) -------------------------------------------------

def schema_problems(values: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(Z2JH_KEYS)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(values)]


SECRET_KEY = re.compile(r"(token|password|passwd|secret|key)$", re.IGNORECASE)
# Keys whose value names a Secret rather than holding one.
SECRET_NAME_KEYS = {"existingSecret", "secretName"}
SECRET_REFS = {"secretKeyRef", "configMapKeyRef", "secretRef", "configMapRef"}
CREDENTIAL_SHAPES = [
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # a password inside a URL
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),  # an OpenAI-style key
    re.compile(r"\b[0-9a-f]{32,}\b"),  # a hex token
    re.compile(r"\b[A-Za-z0-9+/]{40,}={0,2}"),  # a base64 blob
]


def is_placeholder(value: object) -> bool:
    return isinstance(value, str) and (value == "" or bool(re.fullmatch(r"<[^<>]+>", value)))


def inline_secrets(node: object, path: str = "") -> list[str]:
    """Secret-looking keys with a real value, and credential-shaped strings, anywhere in node."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in SECRET_REFS:
                continue  # a reference to a Secret's key, not a secret
            if (SECRET_KEY.search(str(key)) and key not in SECRET_NAME_KEYS
                    and isinstance(value, (str, int, float)) and not isinstance(value, bool)
                    and not is_placeholder(value)):
                found.append(f"{where} holds a value")
            found += inline_secrets(value, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += inline_secrets(item, f"{path}[{i}]")
    elif isinstance(node, str):
        found += [f"{path} looks like a credential" for shape in CREDENTIAL_SHAPES if shape.search(node)]
    return found


def env_secrets_not_from_secrets(docs: list[dict]) -> list[str]:
    """Environment variables named like secrets must come from a secretKeyRef; no Secret objects."""
    problems = [f"{d['kind']} {d['metadata'].get('name')}: a Secret in a manifest" for d in docs if d["kind"] == "Secret"]
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in containers(doc):
            for name, entry in env_of(container).items():
                if SECRET_KEY.search(name) and "secretKeyRef" not in entry.get("valueFrom", {}):
                    problems.append(f"{doc['metadata']['name']}/{container['name']}: {name} is not a secretKeyRef")
    return problems


API_VERSIONS = {"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1",
                "Job": "batch/v1", "NetworkPolicy": "networking.k8s.io/v1", "PodDisruptionBudget": "policy/v1"}


def manifest_problems(docs: list[dict]) -> list[str]:
    problems = []
    for i, doc in enumerate(docs):
        kind = doc.get("kind") if isinstance(doc, dict) else None
        where = f"document {i} ({kind})"
        if kind not in API_VERSIONS:
            problems.append(f"{where}: unknown kind")
            continue
        if doc.get("apiVersion") != API_VERSIONS[kind]:
            problems.append(f"{where}: apiVersion {doc.get('apiVersion')!r}, expected {API_VERSIONS[kind]}")
        meta = doc.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name") or not meta.get("namespace"):
            problems.append(f"{where}: metadata needs a name and a namespace")
        if kind in ("Deployment", "Job"):
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            for c in pod.get("containers", []) or [{}]:
                if not c.get("name") or not c.get("image"):
                    problems.append(f"{where}: a container needs a name and an image")
        if kind == "Deployment":
            selector = doc["spec"].get("selector", {}).get("matchLabels", {})
            labels = doc["spec"]["template"]["metadata"].get("labels", {})
            if not selector or selector.items() - labels.items():
                problems.append(f"{where}: selector does not match the pod template's labels")
        if kind == "Job" and doc["spec"]["template"]["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append(f"{where}: a Job's pods need restartPolicy Never or OnFailure")
    return problems


def gateway_wiring_problems(values: dict, gateway: list[dict]) -> list[str]:
    """The hub service url, the learners' OPENAI_BASE_URL and their network policy all reach the gateway's Service."""
    problems = []
    url = urlsplit(values["hub"]["services"][GATEWAY_SERVICE]["url"])
    host = url.hostname.split(".")
    name, namespace = host[0], host[1] if len(host) > 1 else None
    services = [d for d in gateway if d["kind"] == "Service" and d["metadata"]["name"] == name]
    if len(services) != 1:
        return [f"hub.services.{GATEWAY_SERVICE}.url names Service {name!r}, which gateway.yaml does not define"]
    service = services[0]
    if namespace and service["metadata"]["namespace"] != namespace:
        problems.append(f"the url's namespace {namespace} is not the Service's ({service['metadata']['namespace']})")
    if host[2:] not in ([], ["svc"], ["svc", "cluster", "local"]):
        problems.append(f"{url.hostname} is not a cluster Service name")
    port = next((p for p in service["spec"]["ports"] if p["port"] == (url.port or 80)), None)
    if port is None:
        return problems + [f"Service {name} has no port {url.port or 80}"]
    deployments = [d for d in gateway if d["kind"] == "Deployment"
                   and service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    if len(deployments) != 1:
        return problems + [f"Service {name} selects {len(deployments)} Deployments"]
    pod_labels = deployments[0]["spec"]["template"]["metadata"]["labels"]
    container_ports = {p.get("name"): p["containerPort"] for c in containers(deployments[0]) for p in c.get("ports", [])}
    target = port.get("targetPort", port["port"])
    container_port = container_ports.get(target) if isinstance(target, str) else target
    if container_port not in container_ports.values():
        problems.append(f"Service port {port['port']} targets {target!r}, which no container exposes")
    gateway_env = env_of(containers(deployments[0])[0])
    if gateway_env.get("JUPYTERHUB_SERVICE_PREFIX", {}).get("value") != GATEWAY_PREFIX:
        problems.append(f"the gateway's JUPYTERHUB_SERVICE_PREFIX is not {GATEWAY_PREFIX}")
    if gateway_env.get("JUPYTERHUB_SERVICE_NAME", {}).get("value") != GATEWAY_SERVICE:
        problems.append(f"the gateway's JUPYTERHUB_SERVICE_NAME is not {GATEWAY_SERVICE}")

    # Learners' servers reach the service through the hub's proxy (as spawner.server_environment does).
    extra_env = values["singleuser"]["extraEnv"]
    for name, path in (("OPENAI_BASE_URL", GATEWAY_PREFIX + "v1"), ("MARKETLAB_PROGRESS_URL", GATEWAY_PREFIX + "attempts")):
        if extra_env.get(name) != HUB_IN_CLUSTER + path:
            problems.append(f"{name} {extra_env.get(name)} is not the hub's {HUB_IN_CLUSTER}{path}")
    if extra_env.get("MARKETLAB_BACKEND") != "hub":
        problems.append("learners' servers do not set MARKETLAB_BACKEND=hub")

    allowed = [rule for rule in values["singleuser"]["networkPolicy"].get("egress", [])
               if any(peer.get("podSelector", {}).get("matchLabels") == PROXY_POD for peer in rule.get("to", []))
               and any(p.get("port") == 8000 for p in rule.get("ports", []))]
    if not allowed:
        problems.append("singleuser.networkPolicy.egress has no rule to the proxy's pods on port 8000")
    policies = [d for d in gateway if d["kind"] == "NetworkPolicy"
                and d["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()]
    sources = [peer.get("podSelector", {}).get("matchLabels", {}) for policy in policies
               for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [])
               if any(p.get("port") in (target, container_port) for p in rule.get("ports", []))]
    if PROXY_POD not in sources:
        problems.append("the gateway's network policy does not admit the proxy on its port")

    token = gateway_env.get("JUPYTERHUB_API_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
    expected = {"name": values["hub"].get("existingSecret"), "key": f"hub.services.{GATEWAY_SERVICE}.apiToken"}
    if {k: token.get(k) for k in expected} != expected:
        problems.append(f"the gateway's JUPYTERHUB_API_TOKEN is not read from {expected}, where the hub reads it")
    return problems


def isolation_problems(values: dict) -> list[str]:
    """Learners' pods: a network policy that blocks the internet (so the upstream), other pods and the metadata server."""
    policy = values["singleuser"]["networkPolicy"]
    rules = policy.get("egressAllowRules", {})
    problems = [] if policy.get("enabled") else ["singleuser.networkPolicy is not enabled"]
    problems += [f"singleuser.networkPolicy.egressAllowRules.{rule} is not false"
                 for rule in ("nonPrivateIPs", "privateIPs", "cloudMetadataServer") if rules.get(rule) is not False]
    for rule in policy.get("egress", []):
        for peer in rule.get("to", []):
            if "ipBlock" in peer or "namespaceSelector" in peer or not peer.get("podSelector", {}).get("matchLabels"):
                problems.append(f"singleuser egress rule {peer} reaches beyond named pods")
    if not values["hub"]["networkPolicy"].get("enabled"):
        problems.append("hub.networkPolicy is not enabled")
    return problems


def autograde_problems(job_docs: list[dict], values: dict) -> list[str]:
    job = find(job_docs, "Job")
    pod = job["spec"]["template"]["spec"]
    problems = []
    (container,) = pod["containers"]
    argv = [*container.get("command", []), *container.get("args", [])]
    if argv[:3] != ["marketlab", "course", "autograde"]:
        problems.append(f"the Job runs {argv}, not `marketlab course autograde`")
    course_dir = env_of(container).get("MARKETLAB_COURSE", {}).get("value")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claim = volumes.get(mounts.get(course_dir), {}).get("persistentVolumeClaim", {}).get("claimName")
    if not claim:
        problems.append(f"MARKETLAB_COURSE ({course_dir}) is not a mounted volume claim")
    elif f'"claimName": "{claim}"' not in values["hub"]["extraConfig"]["marketlab-instructors"]:
        problems.append(f"instructors' servers do not mount the course claim {claim} that the Job grades")
    security = container.get("securityContext", {})
    capabilities = security.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        problems.append("the grader does not drop all capabilities first")
    missing = {"SYS_ADMIN", "SETUID", "SETGID", "SETPCAP"} - set(capabilities.get("add", []))
    if missing:
        problems.append(f"bubblewrap (as root, then setpriv) needs {sorted(missing)}")
    if security.get("allowPrivilegeEscalation") is False and "SYS_ADMIN" in capabilities.get("add", []):
        problems.append("Kubernetes refuses CAP_SYS_ADMIN with allowPrivilegeEscalation: false")
    if security.get("privileged"):
        problems.append("the grader is privileged")
    if security.get("procMount") != "Unmasked":
        problems.append("bubblewrap's new /proc needs procMount: Unmasked")
    if pod.get("hostUsers") is not False:
        problems.append("the grading pod must run in its own user namespace (hostUsers: false)")
    pod_security = pod.get("securityContext", {})
    for profile in ("seccompProfile", "appArmorProfile"):
        if security.get(profile, pod_security.get(profile, {})).get("type") != "Unconfined":
            problems.append(f"{profile} must be Unconfined for mount(2) and new namespaces")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("the grading pod mounts a Kubernetes API token")
    gradebook = [d for d in job_docs if d["kind"] == "NetworkPolicy"
                 and any(p.get("port") == 5432 for rule in d["spec"].get("egress", []) for p in rule.get("ports", []))]
    selector = gradebook[0]["spec"]["podSelector"]["matchLabels"] if len(gradebook) == 1 else None
    labels = job["spec"]["template"]["metadata"].get("labels", {})
    if not selector or selector.items() - labels.items():
        problems.append("no network policy lets the grading pod reach the gradebook")
    elif not all(f'"{k}": "{v}"' in values["hub"]["extraConfig"]["marketlab-instructors"] for k, v in selector.items()):
        problems.append(f"instructors' servers do not carry the gradebook label {selector}")
    return problems


def settings_text(gateway: list[dict]) -> str:
    return find(gateway, "ConfigMap", SETTINGS_CONFIGMAP)["data"][SETTINGS_FILE]


def hub_settings(gateway: list[dict]) -> HubSettings:
    """hub.json from the ConfigMap, read by the real class (as settings.load does)."""
    return HubSettings.model_validate_json(settings_text(gateway))


def mounted_at(pod: dict, container: dict) -> dict[str, tuple[dict, dict]]:
    """mountPath -> (the mount, its volume)."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return {m["mountPath"]: (m, volumes.get(m["name"], {})) for m in container.get("volumeMounts", [])}


def settings_mount_problems(mounts: dict[str, tuple[dict, dict]], settings: HubSettings, who: str) -> list[str]:
    mount, volume = mounts.get(str(settings.root / SETTINGS_FILE), ({}, {}))
    if volume.get("configMap", {}).get("name") != SETTINGS_CONFIGMAP or mount.get("subPath") != SETTINGS_FILE:
        return [f"{who}: {settings.root / SETTINGS_FILE} is not the ConfigMap {SETTINGS_CONFIGMAP}'s {SETTINGS_FILE}"]
    return []


# What HubOAuth reads that a hub-managed service is not given, or need not be given here: no
# internal SSL, default token-in-URL and websocket rules, no cookie options, a deprecated name.
SERVICE_ENV_NOT_NEEDED = {"JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_SSL_CERTFILE", "JUPYTERHUB_SSL_CLIENT_CA",
                          "JUPYTERHUB_ALLOW_TOKEN_IN_URL", "JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH",
                          "JUPYTERHUB_COOKIE_OPTIONS", "JUPYTERHUB_OAUTH_SCOPES"}


def service_env_read_by_jupyterhub() -> set[str]:
    """Every JUPYTERHUB_* variable jupyterhub/services/auth.py (HubOAuth, which service.py uses) reads."""
    import jupyterhub.services.auth as auth

    source = Path(auth.__file__).read_text()
    return set(re.findall(r"(?:getenv|environ\.get|_bool_env)\(\s*['\"](JUPYTERHUB_\w+)", source))


def service_problems(gateway: list[dict]) -> list[str]:
    """The gateway pod gives marketlab/hub/service.py what it reads: hub.json, its folder, JUPYTERHUB_*, the key."""
    settings = hub_settings(gateway)
    deployment = find(gateway, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    value = lambda name: env.get(name, {}).get("value")  # noqa: E731
    problems = []
    if container.get("command", [])[-2:] != ["-m", "marketlab.hub.service"]:
        problems.append(f"the gateway runs {container.get('command')}, not marketlab.hub.service")
    if value(ROOT_VARIABLE) != str(settings.root):
        problems.append(f"{ROOT_VARIABLE} is {value(ROOT_VARIABLE)!r}, hub.json's root is {settings.root}")
    mounts = mounted_at(pod, container)
    problems += settings_mount_problems(mounts, settings, "gateway")
    mount, volume = mounts.get(str(settings.gateway), ({}, {}))
    if not volume.get("persistentVolumeClaim", {}).get("claimName") or mount.get("readOnly"):
        problems.append(f"the ledger folder {settings.gateway} is not a writable volume claim")
    claims = {d["metadata"]["name"] for d in gateway if d["kind"] == "PersistentVolumeClaim"}
    if volume.get("persistentVolumeClaim", {}).get("claimName") not in claims:
        problems.append("the ledger's volume claim is not defined in gateway.yaml")

    missing = sorted(service_env_read_by_jupyterhub() - SERVICE_ENV_NOT_NEEDED - env.keys())
    if missing:
        problems.append(f"the gateway lacks what a hub-managed service gets: {missing}")
    where = urlsplit(value("JUPYTERHUB_SERVICE_URL") or "")
    ports = [p["containerPort"] for p in container.get("ports", [])]
    if where.port not in ports or where.hostname != "0.0.0.0":
        problems.append(f"JUPYTERHUB_SERVICE_URL {where.geturl()} is not 0.0.0.0 on a container port {ports}")
    expected = {"JUPYTERHUB_SERVICE_NAME": GATEWAY_SERVICE, "JUPYTERHUB_SERVICE_PREFIX": GATEWAY_PREFIX,
                "JUPYTERHUB_CLIENT_ID": f"service-{GATEWAY_SERVICE}",
                "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{GATEWAY_PREFIX}oauth_callback", "JUPYTERHUB_BASE_URL": "/"}
    problems += [f"{name} is {value(name)!r}, not {want!r}" for name, want in expected.items() if value(name) != want]
    api = urlsplit(value("JUPYTERHUB_API_URL") or "")
    if api.hostname not in ("hub", "hub.marketlab", "hub.marketlab.svc.cluster.local") or api.port != 8081 \
            or api.path != "/hub/api":
        problems.append(f"JUPYTERHUB_API_URL {api.geturl()} is not the chart's hub Service")
    for name in ("JUPYTERHUB_API_TOKEN", KEY_VARIABLE):
        if "secretKeyRef" not in env.get(name, {}).get("valueFrom", {}):
            problems.append(f"{name} does not come from a Secret")
    if env.get(KEY_VARIABLE, {}).get("valueFrom", {}).get("secretKeyRef", {}).get("optional") is not True:
        problems.append(f"{KEY_VARIABLE} must be optional: without it the service uses the built-in model")
    return problems


def hub_oauth_from(gateway: list[dict], monkeypatch) -> HubOAuth:
    """The HubOAuth that service.py makes, in the gateway pod's environment (a stand-in for the token)."""
    (container,) = containers(find(gateway, "Deployment"))
    for name in list(os.environ):
        if name.startswith("JUPYTERHUB_"):
            monkeypatch.delenv(name)
    for name, entry in env_of(container).items():
        monkeypatch.setenv(name, entry["value"] if "value" in entry else "<from a Secret>")
    return HubOAuth()


def learner_env_problems(values: dict, settings: HubSettings) -> list[str]:
    """singleuser.extraEnv is spawner.server_environment for a learner, with the hub's in-cluster URL."""
    local = server_environment(settings, instructor=False)
    extra = {k: str(v) for k, v in values["singleuser"]["extraEnv"].items()}
    problems = []
    for name, want in local.items():
        if name == "PATH":
            continue  # the image's
        if want.startswith(settings.service_url):
            want = HUB_IN_CLUSTER + urlsplit(settings.service_url).path + want[len(settings.service_url):]
        if extra.get(name) != want:
            problems.append(f"singleuser.extraEnv.{name} is {extra.get(name)!r}, the spawner gives {want!r}")
    return problems


def instructor_environment(values: dict, environment: dict) -> dict:
    """What hub.extraConfig gives an instructor's server, run as the hub would (on a stand-in spawner)."""
    c = Config()
    for source in values["hub"]["extraConfig"].values():
        exec(compile(source, "hub.extraConfig", "exec"), {"c": c})
    override = c.KubeSpawner.group_overrides["10-instructors"]["spawner_override"]["environment"]
    spawner = type("Spawner", (), {"environment": environment})()
    return override(spawner) if callable(override) else override


def singleuser_problems(values: dict, settings: HubSettings) -> list[str]:
    """Learners' pods: the start command, hub.json and the exchange where settings.py says."""
    single = values["singleuser"]
    problems = []
    if single.get("cmd", [])[-2:] != ["-m", "marketlab.hub.singleuser"]:
        problems.append(f"singleuser.cmd {single.get('cmd')} is not marketlab.hub.singleuser")
    pod = {"volumes": single["storage"].get("extraVolumes", [])}
    mounts = mounted_at(pod, {"volumeMounts": single["storage"].get("extraVolumeMounts", [])})
    problems += settings_mount_problems(mounts, settings, "singleuser")
    mount, volume = mounts.get(str(settings.exchange), ({}, {}))
    if not volume.get("persistentVolumeClaim") or mount.get("readOnly"):
        problems.append(f"the exchange {settings.exchange} is not a writable volume claim in learners' pods")
    return problems


def hubconfig_problems(values: dict, settings: HubSettings) -> list[str]:
    """hub.config and hub.loadRoles say what marketlab/hub/hubconfig.py configure() says."""
    c = Config()
    hubconfig.configure(c, settings)
    config, problems = values["hub"]["config"], []

    def same(where: str, ours, theirs) -> None:
        if ours != theirs:
            problems.append(f"{where} is {ours!r}; hubconfig.py sets {theirs!r}")

    same("JupyterHub.authenticator_class", config["JupyterHub"].get("authenticator_class"),
         c.JupyterHub.authenticator_class)
    same("JupyterHub.load_groups", config["JupyterHub"].get("load_groups"), c.JupyterHub.load_groups)
    for trait in ("username_pattern", "allow_all"):
        same(f"Authenticator.{trait}", config["Authenticator"].get(trait), c.Authenticator[trait])
    same("Authenticator.admin_users", set(config["Authenticator"].get("admin_users", [])), c.Authenticator.admin_users)
    same("NativeAuthenticator", config.get("NativeAuthenticator"), dict(c.NativeAuthenticator))
    roles = [{"name": name, **role} for name, role in values["hub"].get("loadRoles", {}).items()]
    key = lambda role: role["name"]  # noqa: E731
    same("hub.loadRoles", sorted(roles, key=key), sorted(c.JupyterHub.load_roles, key=key))
    (service,) = c.JupyterHub.services
    ours = values["hub"]["services"][service["name"]]
    for field in ("oauth_no_confirm", "display"):
        same(f"hub.services.{service['name']}.{field}", ours.get(field), service[field])
    return problems


# --- the tests ---------------------------------------------------------------------------------

def test_values_use_only_real_chart_keys_with_their_types():
    assert schema_problems(load_values()) == []


def test_schema_check_bites_on_a_misspelt_key_or_a_wrong_type():
    for path, value in [(("hub", "dbb"), {}), (("singleuser", "memory", "limt"), "2G"),
                        (("singleuser", "cpu", "guarantee"), "a lot"), (("cull", "timeout"), "1h"),
                        (("hub", "services", GATEWAY_SERVICE, "apiTokn"), "<x>"),
                        (("hub", "config", "NativeAuthenticator", "open_sign_up"), False)]:
        values = load_values()
        node = values
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert schema_problems(values), f"{'.'.join(path)} = {value!r} was not caught"


def test_a_key_given_twice_is_refused():
    text = VALUES.read_text()
    load_values(text)
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate keys"):
        load_values(text.replace("hub:\n", "hub:\n  db:\n    password: hunter2\n", 1))


def test_hub_and_gradebook_use_postgresql_and_a_secret_for_the_password():
    values = load_values()
    db = values["hub"]["db"]
    assert db["type"] == "postgres" and db["url"].startswith("postgresql")
    assert "password" not in db and values["hub"]["existingSecret"]
    assert "PGPASSWORD" in values["hub"]["extraConfig"]["marketlab-instructors"]
    job = find(load_manifests(AUTOGRADE), "Job")
    (container,) = containers(job)
    assert env_of(container)["MARKETLAB_GRADEBOOK_URL"]["value"].startswith("postgresql")
    assert "secretKeyRef" in env_of(container)["PGPASSWORD"]["valueFrom"]


def test_no_secret_is_inline():
    assert inline_secrets(load_values()) == []
    for path in (GATEWAY, AUTOGRADE):
        docs = load_manifests(path)
        assert inline_secrets(docs) == [], path.name
        assert env_secrets_not_from_secrets(docs) == [], path.name


def test_secret_check_bites():
    values = load_values()
    values["hub"]["services"][GATEWAY_SERVICE]["apiToken"] = "0123456789abcdef0123456789abcdef"
    assert inline_secrets(values)
    values = load_values()
    values["hub"]["db"]["url"] = "postgresql+psycopg2://jupyterhub:hunter2@db/jupyterhub"
    assert inline_secrets(values)
    values = load_values()
    values["hub"]["config"]["GenericOAuthenticator"] = {"client_secret": "s3cr3t-value"}
    assert inline_secrets(values)
    assert not inline_secrets({"hub": {"services": {"m": {"apiToken": "<from marketlab-hub-secrets>"}}}})

    docs = load_manifests(GATEWAY)
    env = containers(find(docs, "Deployment"))[0]["env"]
    for entry in env:
        if entry["name"] == "MARKETLAB_UPSTREAM_KEY":
            entry.pop("valueFrom", None)
            entry["value"] = "placeholder-but-inline"
    assert env_secrets_not_from_secrets(docs)
    assert env_secrets_not_from_secrets([{"kind": "Secret", "metadata": {"name": "x"}, "data": {}}])


def test_manifests_are_kubernetes_objects():
    for path in (GATEWAY, AUTOGRADE):
        docs = load_manifests(path)
        assert docs and manifest_problems(docs) == [], path.name
    kinds = {d["kind"] for d in load_manifests(GATEWAY)}
    assert {"Deployment", "Service", "NetworkPolicy"} <= kinds


def test_manifest_check_bites():
    docs = load_manifests(GATEWAY)
    broken = copy.deepcopy(docs)
    find(broken, "Service")["apiVersion"] = "apps/v1"
    assert manifest_problems(broken)
    broken = copy.deepcopy(docs)
    del find(broken, "Deployment")["metadata"]["namespace"]
    assert manifest_problems(broken)
    broken = copy.deepcopy(docs)
    find(broken, "Deployment")["spec"]["selector"]["matchLabels"] = {"app": "other"}
    assert manifest_problems(broken)
    assert manifest_problems([["not", "an", "object"]])


def test_hub_service_url_matches_the_gateway_service():
    assert gateway_wiring_problems(load_values(), load_manifests(GATEWAY)) == []


def test_wiring_check_bites():
    values, gateway = load_values(), load_manifests(GATEWAY)
    for mutate in [
        lambda v, g: v["hub"]["services"][GATEWAY_SERVICE].update(url="http://marketlab-gatway.marketlab.svc.cluster.local:8000"),
        lambda v, g: v["hub"]["services"][GATEWAY_SERVICE].update(url="http://marketlab-gateway.marketlab.svc.cluster.local:8080"),
        lambda v, g: v["singleuser"]["extraEnv"].update(OPENAI_BASE_URL="http://marketlab-gateway:8000/v1"),
        lambda v, g: v["singleuser"]["extraEnv"].update(
            MARKETLAB_PROGRESS_URL="http://marketlab-gateway.marketlab.svc.cluster.local:8000/services/marketlab/attempts"),
        lambda v, g: v["singleuser"]["extraEnv"].pop("MARKETLAB_BACKEND"),
        lambda v, g: find(g, "NetworkPolicy")["spec"]["ingress"][0]["from"].remove({"podSelector": {"matchLabels": PROXY_POD}}),
        lambda v, g: find(g, "Service")["spec"].update(selector={"app.kubernetes.io/name": "nothing"}),
        lambda v, g: v["singleuser"]["networkPolicy"].update(egress=[]),
        lambda v, g: v["hub"].update(existingSecret="another-secret"),
    ]:
        v, g = copy.deepcopy(values), copy.deepcopy(gateway)
        mutate(v, g)
        assert gateway_wiring_problems(v, g), mutate


def test_learners_reach_the_hub_and_gateway_only():
    assert isolation_problems(load_values()) == []
    values = load_values()
    values["singleuser"]["networkPolicy"]["egressAllowRules"]["nonPrivateIPs"] = True
    assert isolation_problems(values)
    values = load_values()
    values["singleuser"]["networkPolicy"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    assert isolation_problems(values)
    gateway_policy = find(load_manifests(GATEWAY), "NetworkPolicy")
    sources = [peer["podSelector"]["matchLabels"].get("component") for rule in gateway_policy["spec"]["ingress"]
               for peer in rule["from"]]
    # Servers reach the service through the proxy, never the gateway's pod directly.
    assert "proxy" in sources and "singleuser-server" not in sources


def test_autograde_job_runs_the_sandboxed_grader_on_the_course_volume():
    assert autograde_problems(load_manifests(AUTOGRADE), load_values()) == []
    for mutate in [
        lambda c, p: c["securityContext"].update(procMount="Default"),
        lambda c, p: c["securityContext"]["capabilities"]["add"].remove("SYS_ADMIN"),
        lambda c, p: c["securityContext"].update(allowPrivilegeEscalation=False),
        lambda c, p: p.pop("hostUsers"),
        lambda c, p: c.update(args=["course", "collect"]),
        lambda c, p: c["volumeMounts"].pop(0),
        lambda c, p: c["securityContext"].update(privileged=True),
    ]:
        docs = load_manifests(AUTOGRADE)
        pod = find(docs, "Job")["spec"]["template"]["spec"]
        mutate(pod["containers"][0], pod)
        assert autograde_problems(docs, load_values())


def test_hub_extra_config_is_python():
    for name, source in load_values()["hub"]["extraConfig"].items():
        ast.parse(source, filename=f"hub.extraConfig.{name}")


def test_resources_and_culling_are_set():
    values = load_values()
    single = values["singleuser"]
    assert single["cpu"]["guarantee"] <= single["cpu"]["limit"]
    assert single["memory"]["guarantee"] and single["memory"]["limit"]
    assert values["cull"]["enabled"] and values["cull"]["timeout"] > 0


def test_renders_with_the_real_chart(tmp_path):
    """Only where a Zero to JupyterHub chart folder and the helm-python-sdk are at hand (see the module docstring)."""
    chart_dir = os.environ.get("MARKETLAB_Z2JH_CHART")
    if not chart_dir:
        pytest.skip("MARKETLAB_Z2JH_CHART is not set (the chart cannot be downloaded here)")
    helm_python = pytest.importorskip("helm_python")
    chart = tmp_path / "jupyterhub"
    shutil.copytree(chart_dir, chart)
    schema = chart / "values.schema.json"
    if not schema.exists():  # the chart's source keeps the schema as YAML; packaging converts it
        schema.write_text(json.dumps(yaml.safe_load((chart / "values.schema.yaml").read_text())))
    rendered = helm_python.Chart.load(str(chart)).render(load_values(), name="marketlab", namespace="marketlab",
                                                         is_install=True)
    docs = [d for path, text in rendered.items() if path.endswith(".yaml")
            for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    hub_secret = find(docs, "Secret", "hub")
    assert f"hub.services.{GATEWAY_SERVICE}.apiToken" in hub_secret["data"]
    hub_volumes = find(docs, "Deployment", "hub")["spec"]["template"]["spec"]["volumes"]
    assert load_values()["hub"]["existingSecret"] in [v.get("secret", {}).get("secretName") for v in hub_volumes]
    singleuser_policy = find(docs, "NetworkPolicy", "singleuser")
    assert any(rule.get("ports") == [{"port": 8000, "protocol": "TCP"}] for rule in singleuser_policy["spec"]["egress"])


# --- the hub's settings and what each part reads -----------------------------------------------

def test_the_hub_json_example_is_valid_hub_settings():
    text = settings_text(load_manifests(GATEWAY))
    settings = HubSettings.model_validate_json(text)
    assert settings.root.is_absolute()
    assert settings.upstream.url is None  # the built-in model, as the comments say
    assert set(json.loads(text)) <= set(HubSettings.model_fields)
    # The real class refuses what an example could get wrong.
    for broken in [text.replace('"daily_tokens"', '"daily_token"'), text.replace("200000", "0"),
                   text.replace('"instructor"', '"Instructor"'), text.replace("}\n", "},\n", 1)]:
        assert broken != text
        # a bad instructor name is the hub's own HubError (check_username), the rest pydantic's
        with pytest.raises((ValueError, HubError)):
            HubSettings.model_validate_json(broken)


def test_the_hub_json_names_the_same_people_and_model_as_the_values():
    values, settings = load_values(), hub_settings(load_manifests(GATEWAY))
    assert set(settings.instructors) == set(values["hub"]["config"]["Authenticator"]["admin_users"])
    assert values["singleuser"]["extraEnv"]["MARKETLAB_MODEL"] == served_model(settings)


def test_the_gateway_pod_gives_the_service_what_it_reads():
    assert service_problems(load_manifests(GATEWAY)) == []


def test_service_check_bites():
    def env_entry(docs, name):
        return next(e for e in containers(find(docs, "Deployment"))[0]["env"] if e["name"] == name)

    def drop_env(docs, name):
        env = containers(find(docs, "Deployment"))[0]["env"]
        env.remove(env_entry(docs, name))

    def mount(docs, name):
        return next(m for m in containers(find(docs, "Deployment"))[0]["volumeMounts"] if m["name"] == name)

    for mutate in [
        lambda g: drop_env(g, "JUPYTERHUB_CLIENT_ID"),
        lambda g: drop_env(g, "JUPYTERHUB_API_URL"),
        lambda g: drop_env(g, "JUPYTERHUB_OAUTH_CALLBACK_URL"),
        lambda g: drop_env(g, ROOT_VARIABLE),
        lambda g: env_entry(g, ROOT_VARIABLE).update(value="/srv/marketlab"),
        lambda g: env_entry(g, "JUPYTERHUB_SERVICE_URL").update(value="http://0.0.0.0:8090"),
        lambda g: env_entry(g, "JUPYTERHUB_SERVICE_URL").update(value="http://127.0.0.1:8000"),
        lambda g: env_entry(g, "JUPYTERHUB_CLIENT_ID").update(value="marketlab"),
        lambda g: env_entry(g, "JUPYTERHUB_SERVICE_PREFIX").update(value="/services/gateway/"),
        lambda g: env_entry(g, KEY_VARIABLE)["valueFrom"]["secretKeyRef"].pop("optional"),
        lambda g: mount(g, "state").update(mountPath="/var/lib/marketlab"),
        lambda g: mount(g, "hub-settings").pop("subPath"),
        lambda g: mount(g, "hub-settings").update(mountPath="/etc/marketlab/hub.json"),
        lambda g: find(g, "ConfigMap", SETTINGS_CONFIGMAP)["data"].update(
            {SETTINGS_FILE: settings_text(g).replace("/srv/marketlab-hub", "/srv/other")}),
    ]:
        docs = load_manifests(GATEWAY)
        mutate(docs)
        assert service_problems(docs), mutate
    with pytest.raises(ValueError):
        docs = load_manifests(GATEWAY)
        find(docs, "ConfigMap", SETTINGS_CONFIGMAP)["data"][SETTINGS_FILE] = '{"allowance": {"daily_tokens": -1}}'
        service_problems(docs)


def test_jupyterhub_reads_the_service_from_that_environment(monkeypatch):
    """HubOAuth, as service.py makes it, in the gateway pod's environment."""
    auth = hub_oauth_from(load_manifests(GATEWAY), monkeypatch)
    assert auth.oauth_client_id == f"service-{GATEWAY_SERVICE}"
    assert auth.oauth_redirect_uri == f"{GATEWAY_PREFIX}oauth_callback"
    assert urlsplit(auth.api_url).path == "/hub/api" and auth.hub_prefix == "/hub/"
    assert f"access:services!service={GATEWAY_SERVICE}" in auth.access_scopes
    assert auth.api_token == "<from a Secret>"
    assert service_env_read_by_jupyterhub() >= {"JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID"}


def test_learners_servers_get_the_spawners_environment():
    settings = hub_settings(load_manifests(GATEWAY))
    values = load_values()
    assert learner_env_problems(values, settings) == []
    for name, wrong in [("JUPYTER_CONFIG_PATH", str(settings.instructor_config)), (ROOT_VARIABLE, "/srv/marketlab"),
                        ("MARKETLAB_MODEL", "gpt-4o-mini"),
                        ("OPENAI_BASE_URL", "http://proxy-public.marketlab.svc.cluster.local/services/marketlab")]:
        broken = copy.deepcopy(values)
        broken["singleuser"]["extraEnv"][name] = wrong
        assert learner_env_problems(broken, settings), name


def test_instructors_servers_get_the_course_and_their_config():
    settings = hub_settings(load_manifests(GATEWAY))
    values = load_values()
    learner = {k: str(v) for k, v in values["singleuser"]["extraEnv"].items()}
    instructor = instructor_environment(values, learner)
    wanted = server_environment(settings, instructor=True)
    for name in ("JUPYTER_CONFIG_PATH", "MARKETLAB_COURSE", ROOT_VARIABLE, "OPENAI_BASE_URL", "MARKETLAB_BACKEND"):
        want = wanted[name] if name in ("JUPYTER_CONFIG_PATH", "MARKETLAB_COURSE", ROOT_VARIABLE) else learner[name]
        assert instructor.get(name) == want, name
    assert "PGPASSWORD" in instructor
    assert f'"mountPath": root + "/course"' in values["hub"]["extraConfig"]["marketlab-instructors"]
    assert 'root = "' + str(settings.root) + '"' in values["hub"]["extraConfig"]["marketlab-instructors"]
    broken = copy.deepcopy(values)
    broken["hub"]["extraConfig"]["marketlab-instructors"] = broken["hub"]["extraConfig"]["marketlab-instructors"].replace(
        '"environment": lambda spawner: {**spawner.environment, **instructor_environment}',
        '"environment": instructor_environment')
    assert "OPENAI_BASE_URL" not in instructor_environment(broken, learner)  # what replacing would lose


def test_learners_pods_mount_the_settings_and_exchange_where_settings_says():
    settings = hub_settings(load_manifests(GATEWAY))
    assert singleuser_problems(load_values(), settings) == []
    for mutate in [
        lambda s: s.update(cmd=["marketlab", "hub", "singleuser"]),
        lambda s: s["storage"]["extraVolumeMounts"][0].update(mountPath="/srv/nbgrader/exchange"),
        lambda s: s["storage"]["extraVolumeMounts"].pop(1),
        lambda s: s["storage"]["extraVolumes"][1]["configMap"].update(name="marketlab-gateway"),
    ]:
        values = load_values()
        mutate(values["singleuser"])
        assert singleuser_problems(values, settings), mutate


def test_the_grader_uses_the_course_folder_of_the_settings():
    settings = hub_settings(load_manifests(GATEWAY))
    (container,) = containers(find(load_manifests(AUTOGRADE), "Job"))
    assert env_of(container)["MARKETLAB_COURSE"]["value"] == str(settings.course)


def test_hub_config_mirrors_hubconfig():
    settings = hub_settings(load_manifests(GATEWAY))
    values = load_values()
    assert values["hub"]["config"]["Authenticator"]["username_pattern"] == USERNAME_PATTERN
    assert hubconfig_problems(values, settings) == []
    for mutate in [
        lambda v: v["hub"]["config"]["NativeAuthenticator"].update(minimum_password_length=12),
        lambda v: v["hub"]["config"]["NativeAuthenticator"].update(open_signup=True),
        lambda v: v["hub"]["config"]["Authenticator"].update(username_pattern="^[a-z]+$"),
        lambda v: v["hub"]["config"]["JupyterHub"].pop("load_groups"),
        lambda v: v["hub"]["loadRoles"].pop("server"),
        lambda v: v["hub"]["loadRoles"]["user"]["scopes"].remove(hubconfig.SERVICE_SCOPE),
        lambda v: v["hub"]["loadRoles"]["marketlab-service"].update(services=["gateway"]),
        lambda v: v["hub"]["loadRoles"].update(extra={"scopes": ["admin:users"]}),
        lambda v: v["hub"]["services"][GATEWAY_SERVICE].update(oauth_no_confirm=False),
    ]:
        values = load_values()
        mutate(values)
        assert hubconfig_problems(values, settings), mutate
