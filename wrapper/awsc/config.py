"""The user's config file: awsc's own settings and named cluster templates that extend each other.

``$XDG_CONFIG_HOME/awsc/config.toml`` (``awsc config init`` writes a commented sample)::

    [defaults]              # awsc's settings, and cluster settings every template starts from
    confirm_above = 0.25    # ask before `up` when the estimate is above this many USD/hour
    template = "small"      # the template `awsc up NAME` uses without -t
    region = "us-east-1"

    [templates.small]
    workers = 2

    [templates.big]
    extends = "small"       # everything of `small`, then these
    worker_instance_type = "c5.xlarge"

A template resolves as: the playbooks' defaults (playbooks/vars/cluster.yml) < ``[defaults]`` <
each template of the ``extends`` chain, outermost first < the command line's options. Cluster
settings have the names of the playbooks' extra-vars, so a template is exactly the ``-e`` of an
``ansible-playbook`` run.
"""

import functools
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from awsc import paths
from awsc.errors import AwscError

# Cluster settings a template may hold: the playbooks' public extra-vars (vars/spec.yml), each
# with the Python types a TOML value of it may have.
TOML_TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "bool": bool, "raw": (str, int, float)}
# Playbook variables that are not template settings: per-run choices, not a cluster's shape.
NOT_TEMPLATE_SETTINGS = {"name", "remove_nodes", "delete_volume", "ssh_cidr_lookup_url"}
# awsc's own settings, only in [defaults].
AWSC_SETTINGS: dict[str, type | tuple[type, ...]] = {"confirm_above": (int, float), "template": str}
DEFAULT_CONFIRM_ABOVE = 0.25

SAMPLE = """\
# awsc's config: `awsc up NAME -t TEMPLATE` launches a cluster from one of the templates below.
# Cluster settings have the names of the playbooks' extra-vars (playbooks/vars/cluster.yml);
# anything not set here keeps the playbooks' default. `awsc config show TEMPLATE` prints a
# template with everything resolved.

[defaults]
# Ask for confirmation before `awsc up` when the estimated cost is above this (USD per hour);
# --yes skips the question. 0 asks every time.
confirm_above = 0.25
# The template `awsc up NAME` uses without -t.
template = "small"
# Settings every template starts from.
region = "us-east-1"
# Who may SSH to the master; empty: your public IP /32, looked up at launch.
# ssh_cidr = "203.0.113.7/32"

# A master and two workers of the free-tier type: about $0.05/hour in us-east-1.
[templates.small]
workers = 2
master_instance_type = "t3.micro"
worker_instance_type = "t3.micro"
volume_size = 10           # GiB of /data, kept by `awsc down` unless --delete-volume
root_volume_size = 10      # GiB of each node's system disk
scheduler = "slurm"
# The guard on the master ends the cluster after idle_shutdown minutes with no job and no login
# (0: never), ttl hours after its launch, or once it has cost budget USD; the /data volume stays.
idle_shutdown = 60
# ttl = 8
# budget = 5
# ami = "ami-..."          # empty: the newest official Debian 12 of the region
# key_name = "my-key"      # an EC2 key pair of yours; empty: awsc creates awsc-NAME
# public_key_file = "~/.ssh/id_ed25519.pub"

# Extends `small`: the same, with bigger workers.
[templates.compute]
extends = "small"
workers = 4
worker_instance_type = "c5.xlarge"

# Spot workers: they bill at most spot_max_price USD/hour each and may be taken back by AWS.
[templates.spot]
extends = "compute"
spot_max_price = "0.10"

# Reuse the /data volume a previous cluster left (`awsc volume ls` lists them).
# [templates.reuse]
# extends = "small"
# volume_id = "vol-0123456789abcdef0"
"""


@functools.cache
def user_policy() -> dict[str, Any]:
    """The IAM policy awsc needs in the user's account (playbooks/vars/user_policy.yml)."""
    import yaml

    return yaml.safe_load(paths.playbook("vars/user_policy").read_text())["awsc_user_policy"]


def spec() -> dict[str, Any]:
    """The playbooks' contract (playbooks/vars/spec.yml): argument spec, ranges and patterns."""
    import yaml

    return yaml.safe_load(paths.playbook("vars/spec").read_text())


def cluster_settings() -> dict[str, type | tuple[type, ...]]:
    """The settings a template may hold, with their TOML types, from the playbooks' argument spec."""
    return {
        key: TOML_TYPES[option.get("type", "str")]
        for key, option in spec()["awsc_argument_spec"].items()
        if key not in NOT_TEMPLATE_SETTINGS
    }


def schedulers() -> list[str]:
    return spec()["awsc_argument_spec"]["scheduler"]["choices"]


def validate_name(name: str) -> str:
    if not re.match(spec()["awsc_name_pattern"], name):
        raise AwscError(
            f"Invalid cluster name {json.dumps(name)}: use 1-32 lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit, e.g. myfirst."
        )
    return name


COLLECTION = "collections/ansible_collections/awsc/cluster"


@functools.cache
def _collection_filter(name: str):
    """The collection's filter file plugins/filter/NAME.py: the playbooks and awsc share its code."""
    import importlib.util

    path = paths.project_dir() / COLLECTION / "plugins/filter" / f"{name}.py"
    loaded = importlib.util.spec_from_file_location(f"awsc_cluster_{name}_filter", path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def cidr_check(value: str, anywhere_allowed: bool = False) -> dict[str, Any]:
    """The collection's filter awsc.cluster.cidr_check: one judge of SSH ranges."""
    return _collection_filter("network").cidr_check(value, anywhere_allowed)


def image_digest(extravars: dict[str, Any]) -> str:
    """The playbooks' awsc_image_digest for a run with these extra-vars (unset settings: '')."""
    names = playbook_vars()["awsc_image_setting_names"]
    settings = {name: extravars.get(name, "") for name in names}
    root = str(paths.project_dir() / COLLECTION)
    return _collection_filter("image").install_digest(playbook_vars()["awsc_image_inputs"], root, settings)


def check(settings: dict[str, Any]) -> None:
    """The checks of the playbooks' tasks/validate_launch.yml, before anything is asked of AWS."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    contract = spec()
    given = {k: v for k, v in settings.items() if k in contract["awsc_argument_spec"]}
    result = ArgumentSpecValidator(contract["awsc_argument_spec"]).validate(given)
    if result.error_messages:
        raise AwscError(f"Invalid settings: {'; '.join(result.error_messages)}.")
    for key, limits in contract["awsc_ranges"].items():
        if key not in settings:  # a default the playbooks derive (max_workers)
            continue
        value = str(settings[key])
        if not re.match(r"^-?[0-9]+\Z", value) or not limits["min"] <= int(value) <= limits["max"]:
            raise AwscError(
                f"Invalid {key} {json.dumps(value)}: pass a whole number from {limits['min']} to {limits['max']}, "
                f"e.g. {key} = {limits['example']}."
            )
    for key, number in contract["awsc_numbers"].items():
        value = str(settings.get(key) or "")
        if value and (not re.match(contract["awsc_price_pattern"], value) or float(value) <= 0):
            raise AwscError(
                f"Invalid {key} {json.dumps(value)}: pass {number['what']}, a positive number such as "
                f"{number['example']} (or leave it empty for {number.get('empty', 'none')})."
            )
    if settings.get("ssh_cidr"):
        error = cidr_check(settings["ssh_cidr"], bool(settings.get("ssh_from_anywhere")))["error"]
        if error:
            raise AwscError(error)


@functools.cache
def playbook_vars() -> dict[str, Any]:
    """playbooks/vars/cluster.yml as written (templates unrendered): the facts Python shares with
    the playbooks (defaults, tag keys, alive states, retries, the Debian AMI) come from here."""
    import yaml

    return yaml.safe_load(paths.playbook("vars/cluster").read_text())


@functools.cache
def setting_tags() -> dict[str, str]:
    """Tag key -> setting, for the launch settings kept on the master (vars/cluster.yml: awsc_setting_tags)."""
    tags = playbook_vars()["awsc_setting_tags"]
    return {key: re.fullmatch(r"\{\{ (\w+) \}\}", value).group(1) for key, value in tags.items()}


def settings_from_tags(tags: dict[str, str]) -> dict[str, Any]:
    """The launch settings a master's tags hold, typed as the playbooks' spec says."""
    types = cluster_settings()
    found = {}
    for key, setting in setting_tags().items():
        if key in tags:
            found[setting] = int(tags[key]) if types.get(setting) is int and tags[key] else tags[key]
    return found


def playbook_defaults() -> dict[str, Any]:
    """The playbooks' public defaults, read from playbooks/vars/cluster.yml (one source of truth).
    A default made from another setting (max_workers: the workers) is left to the playbooks."""
    known = cluster_settings()
    return {k: v for k, v in playbook_vars().items() if k in known and not (isinstance(v, str) and "{{" in v)}


class Config:
    """The parsed config file (empty when there is none)."""

    def __init__(self, data: dict[str, Any], path: Path):
        self.path = path
        self.defaults: dict[str, Any] = data.get("defaults", {})
        self.templates: dict[str, dict[str, Any]] = data.get("templates", {})
        self._check()

    @classmethod
    def load(cls, path: Path | None = None) -> "Config":
        path = path or paths.config_file()
        if not path.exists():
            return cls({}, path)
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise AwscError(f"{path} is not valid TOML: {e}.") from e
        return cls(data, path)

    def _check(self) -> None:
        if not isinstance(self.defaults, dict) or not isinstance(self.templates, dict):
            raise AwscError(f"{self.path}: [defaults] and [templates.NAME] must be tables.")
        self._check_table("[defaults]", self.defaults, {**cluster_settings(), **AWSC_SETTINGS})
        for name, template in self.templates.items():
            if not isinstance(template, dict):
                raise AwscError(f"{self.path}: templates.{name} must be a table ([templates.{name}]).")
            self._check_table(f"[templates.{name}]", template, {**cluster_settings(), "extends": str})

    def _check_table(self, where: str, table: dict[str, Any], known: dict[str, Any]) -> None:
        for key, value in table.items():
            if key not in known:
                raise AwscError(f"{self.path} {where}: unknown setting '{key}' (known: {', '.join(sorted(known))}).")
            # TOML's true/false are Python bools, which are ints too: only bool settings take them.
            if not isinstance(value, known[key]) or (isinstance(value, bool) and known[key] is not bool):
                raise AwscError(f"{self.path} {where}: {key} = {value!r} has the wrong type.")
        scheduler = table.get("scheduler")
        if scheduler is not None and scheduler not in schedulers():
            raise AwscError(f"{self.path} {where}: scheduler '{scheduler}' is not one of {', '.join(schedulers())}.")

    @property
    def confirm_above(self) -> float:
        return float(self.defaults.get("confirm_above", DEFAULT_CONFIRM_ABOVE))

    @property
    def default_template(self) -> str | None:
        return self.defaults.get("template")

    def chain(self, template: str) -> list[str]:
        """The template and those it extends, outermost first."""
        chain: list[str] = []
        current: str | None = template
        while current is not None:
            if current in chain:
                raise AwscError(
                    f"{self.path}: templates extend each other in a loop: {' -> '.join([*chain, current])}."
                )
            if current not in self.templates:
                known = ", ".join(sorted(self.templates)) or f"none yet: `awsc config init` writes {self.path}"
                if chain:
                    raise AwscError(f"Template '{chain[-1]}' extends unknown template '{current}' (known: {known}).")
                raise AwscError(f"Unknown template '{current}' (known: {known}).")
            chain.append(current)
            current = self.templates[current].get("extends")
        return list(reversed(chain))

    def resolve(self, template: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """All cluster settings for a template: playbook defaults < [defaults] < chain < overrides."""
        settings = playbook_defaults()
        settings.update({k: v for k, v in self.defaults.items() if k in cluster_settings()})
        template = template or self.default_template
        if template:
            for name in self.chain(template):
                settings.update({k: v for k, v in self.templates[name].items() if k != "extends"})
        settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
        if settings.get("spot_max_price") not in (None, ""):
            settings["spot_max_price"] = str(settings["spot_max_price"])
        if settings["scheduler"] not in schedulers():
            raise AwscError(f"Unknown scheduler '{settings['scheduler']}': use one of {', '.join(schedulers())}.")
        return settings

    def explicit(self, template: str | None, overrides: dict[str, Any] | None = None) -> set[str]:
        """Names of the settings the user gave (config or command line), not playbook defaults."""
        keys = {k for k in self.defaults if k in cluster_settings()}
        template = template or self.default_template
        if template:
            for name in self.chain(template):
                keys |= {k for k in self.templates[name] if k != "extends"}
        return keys | {k for k, v in (overrides or {}).items() if v is not None}


def init(path: Path | None = None, force: bool = False) -> Path:
    path = path or paths.config_file()
    if path.exists() and not force:
        raise AwscError(f"{path} exists already: edit it, or pass --force to replace it with the sample.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SAMPLE)
    return path
