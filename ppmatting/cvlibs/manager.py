"""Component registries: every YAML ``type:`` resolves through one of these.

The registries live in ppmatting itself (not inside another library), so a tool run from any
working directory sees the same components once ``import ppmatting`` has run.
"""
import difflib
import inspect

from ppmatting.utils.errors import ConfigError


class ComponentRegistry:
    """A name -> class (or function) table for one kind of component.

    Use as a decorator: ``@MODELS.add_component`` registers under the class name;
    ``MODELS.add_component(cls, name="Other")`` registers under another name.
    """

    def __init__(self, kind):
        self.kind = kind
        self._components = {}

    def add_component(self, component=None, name=None):
        def register(obj):
            if not (inspect.isclass(obj) or callable(obj)):
                raise TypeError(f"{self.kind}: {obj!r} is neither a class nor a function")
            key = name or obj.__name__
            if key in self._components and self._components[key] is not obj:
                raise KeyError(f"{self.kind}: '{key}' is registered twice "
                               f"({self._components[key].__module__} and {obj.__module__})")
            self._components[key] = obj
            return obj

        if component is None:
            return register
        return register(component)

    def __contains__(self, key):
        return key in self._components

    def __getitem__(self, key):
        if key not in self._components:
            raise ConfigError(self.unknown_message(key))
        return self._components[key]

    def unknown_message(self, key):
        close = difflib.get_close_matches(str(key), list(self._components), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return (f"unknown {self.kind} type '{key}'{hint} "
                f"(registered: {', '.join(sorted(self._components)) or 'none'})")

    @property
    def components_dict(self):
        return dict(self._components)

    def names(self):
        return sorted(self._components)

    def __repr__(self):
        return f"ComponentRegistry({self.kind}: {', '.join(self.names())})"


MODELS = ComponentRegistry("model")
BACKBONES = ComponentRegistry("backbone")
DECODERS = ComponentRegistry("decoder")
REFINERS = ComponentRegistry("refiner")
LOSSES = ComponentRegistry("loss")
DATASETS = ComponentRegistry("dataset")
TRANSFORMS = ComponentRegistry("transform")

ALL_REGISTRIES = (MODELS, BACKBONES, DECODERS, REFINERS, LOSSES, DATASETS, TRANSFORMS)


def find_registry(type_name):
    """Return every registry holding ``type_name`` (usually exactly one)."""
    return [reg for reg in ALL_REGISTRIES if type_name in reg]
