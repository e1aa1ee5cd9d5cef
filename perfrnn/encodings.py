"""Which encoding a configuration uses: the one table of encodings.

Every encoding implements `perfrnn.encoding.Encoding`; nothing else needs to
know which one it holds.
"""

from __future__ import annotations

from perfrnn.configs import ModelConfig
from perfrnn.encoding import Encoding
from perfrnn.metric_encoding import MetricEncoding
from perfrnn.multitrack import MultiTrackEncoding
from perfrnn.performance_encoding import PerformanceEncoding


def encoding_for(config: ModelConfig) -> Encoding:
    """The encoding of a configuration: Magenta's for one part, multi-track for a
    band, metric (time in beats) for drum and band styles that ask for it."""
    if config.is_metric:
        return MetricEncoding(config)
    if config.is_multitrack:
        return MultiTrackEncoding(config)
    return PerformanceEncoding(config)
