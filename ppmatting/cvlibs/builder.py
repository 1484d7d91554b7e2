"""Build objects from config mappings that carry ``type:``.

Nested mappings with ``type:`` (a model's backbone, a dataset's transforms) are built first, so a
component's constructor receives ready objects. Constructor errors that come from a wrong key or
value are turned into one-line :class:`ConfigError`s naming the key path and the config file.
"""
import inspect

from ppmatting.cvlibs import manager
from ppmatting.utils.errors import ConfigError


def _lookup(type_name, registry, where):
    if registry is not None:
        if type_name not in registry:
            raise ConfigError(f"{where}: {registry.unknown_message(type_name)}")
        return registry[type_name]
    found = manager.find_registry(type_name)
    if not found:
        every = [name for reg in manager.ALL_REGISTRIES for name in reg.names()]
        import difflib
        close = difflib.get_close_matches(str(type_name), every, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"{where}: unknown type '{type_name}'{hint}")
    return found[0][type_name]


def _check_arguments(component, kwargs, where):
    """Name the misspelt or missing key before the constructor sees it."""
    try:
        signature = inspect.signature(component)
    except (TypeError, ValueError):
        return
    params = signature.parameters
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if not accepts_any:
        import difflib
        for key in kwargs:
            if key not in params:
                close = difflib.get_close_matches(key, list(params), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                allowed = ", ".join(k for k, p in params.items()
                                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
                raise ConfigError(f"{where}.{key}: unknown key for {component.__name__}{hint}; "
                                  f"allowed: {allowed}")
    for key, param in params.items():
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) \
                and param.default is inspect.Parameter.empty and key not in kwargs and key != "self":
            raise ConfigError(f"{where}.{key}: missing key required by {component.__name__}")


def build_component(cfg, registry=None, where="config"):
    """Build the object described by ``cfg`` (a mapping with ``type:``).

    Args:
        cfg: mapping; ``type`` names the registered class or function, the other keys are its
            arguments. Nested mappings with ``type`` and lists of them are built recursively.
        registry: the registry to search (``None`` searches all of ppmatting's registries).
        where: key path and file for error messages, e.g. ``"configs/x.yml: model"``.
    """
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError(f"{where}: expected a mapping with a 'type' key, got {type(cfg).__name__}")
    kwargs = {}
    for key, value in cfg.items():
        if key == "type":
            continue
        kwargs[key] = build_nested(value, f"{where}.{key}")
    component = _lookup(cfg["type"], registry, where)
    _check_arguments(component, kwargs, where)
    try:
        return component(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where} ({cfg['type']}): {err}") from None


def build_nested(value, where):
    if isinstance(value, dict) and "type" in value:
        return build_component(value, None, where)
    if isinstance(value, list):
        return [build_nested(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value
