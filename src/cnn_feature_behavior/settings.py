"""Project settings: see https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from cnn_feature_behavior.config_loader import StudyConfigLoader
from cnn_feature_behavior.device import DeviceHooks
from cnn_feature_behavior.lineage.hooks import LineageHooks
from cnn_feature_behavior.log_lines import LogLinesHooks
from cnn_feature_behavior.pipelines.reporting.hooks import ReportLocationHooks

# LogLinesHooks: one log record a line where the output is not a terminal (Rich wraps at 80
# columns there). DeviceHooks: says which device the run uses, before the first node, without
# TensorFlow's cuInit error line on a machine that has no GPU. ReportLocationHooks: says where
# the report is at the end of a run that wrote one. LineageHooks: the run's locks, a record
# beside every output, every input checked before use (docs/reliability.md, "Lineage").
HOOKS = (LogLinesHooks(), DeviceHooks(), ReportLocationHooks(), LineageHooks())

# The project must never reach the network unasked: the telemetry plugin's hooks stay off
# here, and `.telemetry` (consent: false) silences its CLI hook too.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

# OmegaConfigLoader with conf/local read over every environment, and the catalog's paths taken
# from the run's parameters (`${params:source_model}`): config_loader.py.
CONFIG_LOADER_CLASS = StudyConfigLoader
# One environment per target dataset (`kedro run --env caltech101`). A plain `kedro run`
# runs the embedded default study, the `digits` environment, which needs no download.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "digits",
    # An env's parameters.yml overrides single keys of a block (e.g. `ingestion.allow_missing`)
    # instead of replacing the whole block from base.
    "merge_strategy": {"parameters": "soft"},
}
