"""Project settings: see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from kedro.config import OmegaConfigLoader

from cnn_feature_behavior.device import DeviceHooks
from cnn_feature_behavior.lineage.hooks import LineageHooks
from cnn_feature_behavior.pipelines.reporting.hooks import ReportLocationHooks

# DeviceHooks: says which device the run uses, before the first node, without TensorFlow's
# cuInit error line on a machine that has no GPU. ReportLocationHooks: says where the report
# is at the end of a run that wrote one. LineageHooks: the run's locks, a record beside every
# output, every input checked before use (docs/reliability.md, "Lineage").
HOOKS = (DeviceHooks(), ReportLocationHooks(), LineageHooks())

# The project must never reach the network unasked: the telemetry plugin's hooks stay off
# here, and `.telemetry` (consent: false) silences its CLI hook too.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

CONFIG_LOADER_CLASS = OmegaConfigLoader
# One environment per target dataset (`kedro run --env caltech101`). A plain `kedro run`
# runs the embedded default study, the `digits` environment, which needs no download.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "digits",
    # An env's parameters.yml overrides single keys of a block (e.g. `ingestion.allow_missing`)
    # instead of replacing the whole block from base.
    "merge_strategy": {"parameters": "soft"},
}
