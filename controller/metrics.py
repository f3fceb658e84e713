"""Metric families for prometheus_client's exposition, made the one way every collector here makes them.

A name ending in `_total` is a counter, a `gauge` is a level; any other number the controller keeps (cumulative,
but named before these rules) stays untyped, so that every name reads as it always has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, UnknownMetricFamily

Samples = float | Iterable[tuple[Mapping[str, str], float]]  # one value, or (labels, value) pairs


def family(name: str, documentation: str, samples: Samples, labels: tuple[str, ...] = (), gauge: bool = False
           ) -> Metric:
    """A family of one unlabelled value, or of labelled ones (each with every one of `labels`)."""
    kind = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily if gauge else UnknownMetricFamily
    if not labels:
        return kind(name, documentation, value=samples)
    metric = kind(name, documentation, labels=labels)
    for values, value in samples:  # type: ignore[union-attr]
        metric.add_metric([values[label] for label in labels], value)
    return metric
