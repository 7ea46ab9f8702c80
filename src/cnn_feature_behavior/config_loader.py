"""The project's configuration loader: Kedro's OmegaConfigLoader with conf/local over every
environment, and the catalog's paths taken from the run's parameters.

Two things Kedro users expect that the stock loader does not do with one environment per dataset
(conf/README.md, "How the configuration merges"):

- `conf/local/` is read over whichever environment runs (base, then `--env <dataset>`, then
  local; `--params` last), not only by `--env local`: personal settings such as
  `transfer.maps.embeddings` or a source model of one's own apply to every dataset. Each kind
  merges with local as it merges with the environment (parameters key by key, catalog entries
  and globals whole). The dataset is chosen by the environment, so conf/local/globals.yml may not
  set `dataset`.
- The catalog reads parameters through `${params:<name>}`: `${params:source_model}` is the run's
  `source_model` however it was set (base, the environment, conf/local or `--params`), so the
  output paths and the extraction always name the same model. The stock loader offers the
  catalog only `${runtime_params:...}`, which a `source_model` in a parameters file never reaches.

Kedro resolves interpolations through OmegaConf's process-wide resolvers, as its own `globals`
and `runtime_params` do: `params` is registered for each catalog this loader builds, bound to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException, OmegaConfigLoader
from omegaconf import OmegaConf

LOCAL_ENV = "local"
PARAMS_RESOLVER = "params"


class StudyConfigLoader(OmegaConfigLoader):
    """OmegaConfigLoader reading base, the run's environment, then `local_env` (module doc).

    `local_env=None` reads no local layer (tests of the project's own configuration).
    """

    def __init__(
        self,
        conf_source: str | Path,
        env: str | None = None,
        runtime_params: dict[str, Any] | None = None,
        *,
        local_env: str | None = LOCAL_ENV,
        **kwargs: Any,
    ):
        self.local_env = local_env
        self._catalog_params: dict[str, Any] = {}
        super().__init__(conf_source, env, runtime_params, **kwargs)

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key in self or key not in self.config_patterns:
            return super().__getitem__(key)  # set explicitly, or Kedro's error
        if key == "catalog":
            self._catalog_params = self["parameters"]
            OmegaConf.register_new_resolver(PARAMS_RESOLVER, self._param_value, replace=True)
        else:
            OmegaConf.clear_resolver(PARAMS_RESOLVER)
        try:
            config = super().__getitem__(key)
        except MissingConfigException:
            # None in base and the environment (credentials, usually): local's alone, if any.
            config = self._with_local_layer(key, {})
            if not config:
                raise
        else:
            config = self._with_local_layer(key, config)
        if key == "parameters":
            self._check_dataset(config)
        return config

    def local_path(self) -> Path | None:
        """The local environment's folder where this run reads it on top of its environment."""
        run_env = self.env or self.default_run_env
        if not self.local_env or self.local_env in (run_env, self.base_env):
            return None
        path = Path(self._get_conf_env_path(self.local_env))
        return path if self._fs.isdir(path.as_posix()) else None

    def _with_local_layer(self, key: str, config: dict[str, Any]) -> dict[str, Any]:
        path = self.local_path()
        if path is None:
            return config
        files = self._read_dir_configs(
            str(path), [*self.config_patterns[key]], key, set(), key == "credentials"
        )
        local = self._merge_and_resolve(key, files)
        if not local:
            return config
        if key == "globals" and "dataset" in local:
            raise ValueError(
                f"{path}: globals set `dataset` ({local['dataset']!r}), but conf/{path.name} applies "
                "to every environment; the dataset is chosen with `--env <dataset>` "
                "(conf/<dataset>/globals.yml)"
            )
        return self._merge_configs(config, local, key, str(path))

    def _check_dataset(self, parameters: dict[str, Any]) -> None:
        """The `dataset` parameter must be the environment's: the paths are built from the latter."""
        chosen = self._globals.get("dataset") if isinstance(self._globals, dict) else None
        given = parameters.get("dataset")
        if chosen is not None and given is not None and given != chosen:
            raise ValueError(
                f"parameter dataset is {given!r} but this run's environment is the dataset "
                f"{chosen!r}: choose the dataset with `--env {given}`, not with a `dataset` "
                "parameter (--params or a parameters file), which would leave every output path "
                f"under {chosen!r}"
            )

    def _param_value(self, name: str) -> Any:
        """`${params:<dotted name>}`: the run's parameter, after every layer and `--params`."""
        value: Any = self._catalog_params
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                raise KeyError(
                    f"the catalog reads ${{{PARAMS_RESOLVER}:{name}}}, but the run has no "
                    f"parameter {name!r}"
                )
            value = value[part]
        return value
