"""The public surface of plantd.config, pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import plantd.config


def test_exports() -> None:
    assert sorted(plantd.config.__all__) == sorted(
        [
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
            "section_changes",
            "sections_changed",
            "Locator",
            "LoggerConfig",
            "ProxyConfig",
            "LoggingConfig",
            "MetricsConfig",
            "ModuleHeader",
            "OperationRule",
            "PathsConfig",
            "PlantdConfig",
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
            "to_data",
        ]
    )


def test_every_export_exists_and_belongs_to_the_package() -> None:
    for name in plantd.config.__all__:
        value = getattr(plantd.config, name)
        module = getattr(value, "__module__", None)
        if isinstance(value, type) and module != "typing":
            assert module is not None
            assert module.startswith("plantd.config."), (name, module)
