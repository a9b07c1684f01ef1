"""Training quality metrics (FID) with the official names, result dicts and jsonl files."""
from .fid import dataset_stats, frechet_distance, generator_stats
from .inception import InceptionFID, MetricUnavailable, get_inception
from .metric_main import METRICS, calc_metric, is_valid_metric, report_metric

__all__ = ['InceptionFID', 'METRICS', 'MetricUnavailable', 'calc_metric', 'dataset_stats',
           'frechet_distance', 'generator_stats', 'get_inception', 'is_valid_metric',
           'report_metric']
