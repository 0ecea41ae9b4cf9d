"""The front door: API names load lazily and shadow no submodule of the package."""
import importlib
import pkgutil

import pscl


def test_api_names_shadow_no_module_and_modules_stay_modules():
    import pscl.api  # noqa: F401  (loads every API name)
    modules = {m.name.rsplit(".", 1)[-1] for m in pkgutil.iter_modules(pscl.__path__)}
    assert not modules & set(pscl.__all__), "an API name equals a submodule's name"
    assert callable(pscl.finetune) and callable(pscl.predict) and pscl.FinetuneConfig().steps > 0
    assert type(importlib.import_module("pscl.train.finetune")).__name__ == "module"
    assert set(pscl.api.__all__) == set(pscl.__all__) - {"__version__"}
