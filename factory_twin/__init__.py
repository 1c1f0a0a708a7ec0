"""factory-twin: digital twin of a liquid-cooled AI factory.

Subpackages: ``factory_twin.models`` (physics), ``factory_twin.twin`` (facility, scenarios, engine),
``factory_twin.optimization`` (dispatch, MPC, studies), ``factory_twin.dashboard`` (Dash app),
``factory_twin.data`` (reference files) and ``factory_twin.cli`` (command line).

>>> from factory_twin import twin, optimization
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

# In a source checkout the subpackages sit beside this folder (the repository's layout); an installed
# wheel or an editable install maps them under this package. Either way one copy of the code is imported.
_root = _Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "twin" / "__init__.py").is_file():
    __path__.append(str(_root))
del _Path, _root
