"""Configuration: YAML files and environment overrides -> typed, frozen, validated values.

Load once, at the entry point, and pass the value down::

    config_dir = resolve_config_dir(args_config_dir, os.environ)
    config = load_config(config_dir, os.environ)   # ConfigError lists every problem
    config.broker.heartbeat_interval               # 2.5 (seconds, a float)

Sources, lowest precedence first: built-in defaults, ``<config dir>/plantd.yaml``, then
``PLANTD_<SECTION>_<KEY>`` variables. Every problem names its file and line (or its variable),
its key path, what was found and what was expected. ``docs/configuration.md`` lists every key.

The generic machinery is public too, for other config files (``modules.d/*.yaml``):
:func:`read_yaml` keeps the line of every key, :func:`parse_dataclass` builds a frozen dataclass
from the data (markers :class:`Duration`, :class:`Size`, :class:`Ge`, :class:`Gt`, :class:`Le`,
:class:`Check`), and :func:`to_data` turns one back into plain data. For checks of one's own,
worded the same way: :class:`Locator` turns a key path into a problem line that names the file
and line, and :func:`did_you_mean` suggests the closest of the known names.
"""

from __future__ import annotations

from plantd.config._changes import ConfigChanges, section_changes, sections_changed
from plantd.config._env import env_override_names
from plantd.config._loader import CONFIG_FILE, DEFAULT_CONFIG_DIR, load_config, resolve_config_dir
from plantd.config._location import KeyPath, Locator
from plantd.config._markers import INTERNAL, Check, Duration, Ge, Gt, Le, Size
from plantd.config._model import (
    BrokerConfig,
    BusConfig,
    ClientConfig,
    ControlConfig,
    HistorianConfig,
    LoggerConfig,
    LoggingConfig,
    MetricsConfig,
    PathsConfig,
    PlantdConfig,
    ProxyConfig,
    StateConfig,
    WorkerConfig,
    is_loopback_endpoint,
)
from plantd.config._modules import (
    MODULES_DIR,
    RESERVED_MODULE_NAMES,
    ModuleHeader,
    check_module_file,
    check_modules_dir,
    reserved_by,
)
from plantd.config._schema import did_you_mean, parse_dataclass, to_data
from plantd.config._security import (
    ACCESS_LEVELS,
    Access,
    AuditConfig,
    OperationRule,
    Role,
    SecurityConfig,
)
from plantd.config._yaml import YamlDocument, parse_yaml, read_yaml

__all__ = [
    "ACCESS_LEVELS",
    "CONFIG_FILE",
    "DEFAULT_CONFIG_DIR",
    "INTERNAL",
    "MODULES_DIR",
    "RESERVED_MODULE_NAMES",
    "Access",
    "AuditConfig",
    "BrokerConfig",
    "BusConfig",
    "Check",
    "ClientConfig",
    "ConfigChanges",
    "ControlConfig",
    "Duration",
    "Ge",
    "Gt",
    "HistorianConfig",
    "KeyPath",
    "Le",
    "Locator",
    "LoggerConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModuleHeader",
    "OperationRule",
    "PathsConfig",
    "PlantdConfig",
    "ProxyConfig",
    "Role",
    "SecurityConfig",
    "Size",
    "StateConfig",
    "WorkerConfig",
    "YamlDocument",
    "check_module_file",
    "check_modules_dir",
    "did_you_mean",
    "env_override_names",
    "is_loopback_endpoint",
    "load_config",
    "parse_dataclass",
    "parse_yaml",
    "read_yaml",
    "reserved_by",
    "resolve_config_dir",
    "section_changes",
    "sections_changed",
    "to_data",
]
